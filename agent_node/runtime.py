"""An open store plus an engine: how a process runs workflows.

``Runtime`` is what ``Workflow.run`` uses under the hood (one per event loop
and store URL, shared by concurrent runs so their commits are grouped), what
``agent-node run``/``batch``/``resume``/``worker`` build on, and what an
application may hold itself::

    async with Runtime("sqlite:///app.db") as rt:
        result = await rt.run(wf, State(query="hi"))  # a Workflow, or wf.compile()
        if result.status == "waiting":
            await rt.signal(result.execution_id, "decision", {"ok": True})
            result = await rt.wait(result.execution_id)

A runtime drives every execution it started or resumed (``run``,
``start_execution``, ``wait``, ``signal``) until the execution ends or the
runtime closes: its timers and wait timeouts fire, and a signal — from
``rt.signal`` or another process (``agent-node signal``) — moves it on, also
after ``run`` returned on a park. One that another process ends
(``agent-node cancel``, a worker completing it) is let go, and its
``wait`` returns, within a ``poll_interval`` (``rt.drives(id)`` says
whether it still is driven). Executions an earlier process left (a
crash) are taken up when resumed (``run(wf, execution_id=...)``), or by
``Runtime(scope="all")``, ``agent-node resume`` or a worker.

It is the composition root of in-process runs, as :mod:`agent_node.node` is
of a served node: the node executors own the protocols they need, and the
runtime hands them the adapters of :mod:`agent_node.integrations` (litellm,
httpx) as factories called on first use, so no executor imports an adapter
and starting a runtime imports neither library.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from agent_node import collector
from agent_node.engine import faults
from agent_node.engine.engine import Engine, EngineState
from agent_node.engine.executor import Executor
from agent_node.engine.fit import stored_state
from agent_node.engine.registry import Loader, WorkflowRegistry
from agent_node.engine.state import validated_input
from agent_node.errors import ConfigError, UnknownExecution, UsageError
from agent_node.integrations import http_transport, model_client
from agent_node.nodes import default_executors
from agent_node.nodes.model import ModelExecutor
from agent_node.nodes.model_budget import BUDGET_EVENT
from agent_node.results import RunResult, to_event
from agent_node.store import Store, default_store_url, store_from_url
from agent_node.store.records import ExecutionRecord
from agent_node.workflow.budget import Budget
from agent_node.workflow.compiled import CompiledWorkflow, StateT
from agent_node.workflow.loading import load_workflow
from agent_node.workflow.refs import refuse_run_while_loading

__all__ = ["Runtime", "close_shared_runtimes", "shared_runtime"]


class Compilable(Protocol[StateT]):
    """What compiles to a workflow: the SDK's ``Workflow``."""

    def compile(self) -> CompiledWorkflow[StateT]: ...


class Runtime:
    def __init__(
        self,
        store: str | Store | None = None,
        *,
        node: str = "local",
        scope: Literal["own", "all"] = "own",
        loader: Loader | None = None,
        executors: Mapping[str, Executor] | None = None,
        **engine_options: Any,
    ) -> None:
        if store is None or isinstance(store, str):
            store = store_from_url(store or default_store_url())
        self.store: Store = store
        self.workflows = WorkflowRegistry(loader or load_workflow)
        given = dict(executors or {})
        models = given.get("model")
        # Judges ask through the model executor given, so both share one client.
        made = default_executors(
            models if isinstance(models, ModelExecutor) else None,
            make_model_client=model_client,
            make_http_transport=http_transport,
        )
        self._made = {kind: e for kind, e in made.items() if kind not in given}
        self._held = False
        self.engine = Engine(
            self.store,
            self.workflows,
            {**made, **given},
            node=node,
            scope=scope,
            **engine_options,
        )

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        refuse_run_while_loading("Runtime.start()")
        if self.engine.state is EngineState.RUNNING:
            raise UsageError("this Runtime is started already")
        if self.engine.state is not EngineState.NEW:
            raise UsageError(_ended(self.engine.state, "cannot start again"))
        await self.store.open()
        await self.engine.start()
        if not self._held:  # full collector passes skip what is alive now (collector.py)
            collector.hold()
            self._held = True

    async def close(self) -> None:
        if self.engine.state is EngineState.RUNNING:
            await self.engine.stop()
        await self.store.close()
        if self._held:
            self._held = False
            collector.release()
        # The default executors' own clients (a model client made on first
        # use); executors handed in belong to whoever made them.
        for executor in self._made.values():
            closing = getattr(executor, "aclose", None)
            if closing is not None:
                await closing()

    @property
    def running(self) -> bool:
        return self.engine.state is EngineState.RUNNING

    def drives(self, execution_id: str) -> bool:
        """Whether this runtime drives the execution now (see the module's
        doc): it was run, started, resumed, waited for or signalled here and
        has not ended. One that ends elsewhere (``agent-node cancel``, a
        worker) is let go within a ``poll_interval`` or two."""
        return self.running and self.engine.drives(execution_id)

    async def run(
        self,
        workflow: CompiledWorkflow[StateT] | Compilable[StateT],
        state: BaseModel | Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> RunResult[StateT]:
        """Start (or, for an existing ``execution_id``, resume) an execution and
        wait until it ends or parks on an external event; the runtime drives
        it on after that (see the module's doc). ``budget``: what this
        execution may spend on models, within its workflow's own
        (``tokens``, ``cost`` in USD, ``calls``; checked before each call)."""
        compiled = _compiled(workflow)
        execution_id = await self._start(compiled, state, execution_id, budget, watch=True)
        return await self._result_of(compiled, execution_id, "parked")

    async def start_execution(
        self,
        workflow: CompiledWorkflow[Any] | Compilable[Any],
        state: BaseModel | Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> str:
        """:meth:`run` without waiting: the execution's id (its result: :meth:`wait`)."""
        return await self._start(_compiled(workflow), state, execution_id, budget, watch=False)

    async def wait(
        self, execution_id: str, *, until: Literal["parked", "terminal"] = "parked"
    ) -> RunResult:
        """The result of an execution, as :meth:`run` gives it: when it ends
        or, unless ``until="terminal"``, parks on an external event. Its
        workflow must be known here (run or started here, or loadable from
        the reference it recorded). One not driven here yet is from now on
        (a resume: one an earlier process left goes on)."""
        self._check_open()
        record = await self.store.get(execution_id)
        if record is None:
            raise UnknownExecution(execution_id)
        workflow = self.workflows.get(
            record.workflow_id, record.workflow_version, record.workflow_ref
        )
        self.engine.drive(execution_id)
        return await self._result_of(workflow, execution_id, until)

    async def signal(self, execution_id: str, event: str, data: Any = None) -> None:
        """Deliver ``event`` (``data``: its JSON payload) to the execution's
        wait for it, as ``agent-node signal`` does; this runtime drives the
        execution on. Raises :class:`~agent_node.errors.UnknownExecution`,
        and :class:`~agent_node.errors.InvalidSignal` when no wait of it
        takes that event (or the payload does not fit)."""
        self._check_open()
        await self.engine.control.signal(execution_id, event, data)
        self.engine.drive(execution_id)

    async def cancel(self, execution_id: str, reason: str | None = None) -> bool:
        """Cancel the execution, as ``agent-node cancel`` does (a step of it
        running here is interrupted); False when it had ended already.
        Raises :class:`~agent_node.errors.UnknownExecution`."""
        self._check_open()
        return await self.engine.control.cancel(execution_id, reason or "cancelled")

    async def _result_of(
        self,
        workflow: CompiledWorkflow[StateT],
        execution_id: str,
        until: Literal["parked", "terminal"],
    ) -> RunResult[StateT]:
        try:
            record = await self.engine.wait(execution_id, until=until)
        except faults.InjectedCrash:
            await self.engine.abandon()
            raise
        except UsageError:
            if self.engine.state is EngineState.RUNNING:
                raise
            said = f"stopped waiting for execution {execution_id}"
            raise UsageError(_ended(self.engine.state, said)) from None
        return await self.result(workflow, record)

    def _check_open(self) -> None:
        if self.engine.state is EngineState.NEW:
            raise UsageError(
                "the Runtime is not started: use `async with Runtime(...) as rt:`"
                " or `await rt.start()` first"
            )
        if self.engine.state is not EngineState.RUNNING:
            raise UsageError(_ended(self.engine.state, "cannot run anything"))

    async def _start(
        self,
        workflow: CompiledWorkflow,
        state: BaseModel | Mapping[str, Any] | None,
        execution_id: str | None,
        budget: Budget | Mapping[str, Any] | None,
        *,
        watch: bool,
    ) -> str:
        """:meth:`start_execution`; with ``watch``, a :meth:`Engine.wait`
        follows (a new execution is watched from its creation on)."""
        self._check_open()
        self.workflows.add(workflow)
        notes: list[tuple[str, Any]] = []
        if budget is not None:
            own = budget if isinstance(budget, Budget) else Budget.model_validate(budget)
            notes.append((BUDGET_EVENT, own.model_dump(exclude_none=True)))
        if execution_id is not None:
            existing = await self.store.get(execution_id)
            if existing is not None:
                _check_same_workflow(workflow, existing)
                if state is not None:
                    await self._check_same_input(workflow, existing, state)
                self.engine.drive(execution_id)
                return execution_id
        if state is None:
            raise (
                UnknownExecution(execution_id)
                if execution_id
                else UsageError(
                    "give an input state, or the execution_id of an execution to resume"
                )
            )
        if not isinstance(state, BaseModel | Mapping):
            raise UsageError(f"the input state must be a {workflow.state_model.__name__} or a dict")
        try:
            new_id, _ = await self.engine.submit(
                workflow, state, execution_id=execution_id, notes=notes, watch=watch
            )
        except faults.InjectedCrash:
            await self.engine.abandon()
            raise
        return new_id

    async def _check_same_input(
        self,
        workflow: CompiledWorkflow,
        record: ExecutionRecord,
        state: BaseModel | Mapping[str, Any],
    ) -> None:
        """Resuming with an input is resuming with the one the execution
        started with; another input is a mistake, not a new run."""
        if not isinstance(state, BaseModel | Mapping):
            raise UsageError(f"the input state must be a {workflow.state_model.__name__} or a dict")
        given = validated_input(workflow, state)
        log = await self.store.events(record.id)
        started = next((e for e in log if e.kind == "execution_started"), None)
        recorded = (to_event(started).data or {}) if started is not None else {}
        if "input" in recorded and recorded["input"] != given:
            raise UsageError(_input_mismatch(record.id, recorded["input"], given))

    async def result(
        self, workflow: CompiledWorkflow[StateT], record: ExecutionRecord
    ) -> RunResult[StateT]:
        log = await self.store.events(record.id)
        final = to_event(log[-1]).data if log else None
        output = final.get("output") if isinstance(final, dict) else None
        state = stored_state(workflow, record.id, record.state)
        return RunResult(record.id, record.status, state, record.error, log, output)


def _compiled(workflow: CompiledWorkflow[StateT] | Compilable[StateT]) -> CompiledWorkflow[StateT]:
    """``workflow`` compiled: an SDK ``Workflow`` is compiled (as its own
    ``run`` does); a compiled one is used as it is."""
    if isinstance(workflow, CompiledWorkflow):
        return workflow
    compile_ = getattr(workflow, "compile", None)
    compiled = compile_() if callable(compile_) else None
    if isinstance(compiled, CompiledWorkflow):
        return compiled
    raise UsageError(
        "give a Workflow or a compiled workflow (wf.compile(), load_workflow(...)),"
        f" not {type(workflow).__name__}"
    )


def _ended(state: EngineState, what: str) -> str:
    """Why a runtime that was closed (or crashed) ``what``: make a new one."""
    how = "was closed" if state is EngineState.STOPPED else "crashed"
    return (
        f"this Runtime {how} and {what}: a Runtime is not reopened; make a new Runtime"
        " (an execution it left goes on with run(workflow, execution_id=...) there)"
    )


def _check_same_workflow(workflow: CompiledWorkflow, record: ExecutionRecord) -> None:
    if (record.workflow_id, record.workflow_version) != (workflow.ir.id, workflow.ir.version):
        raise ConfigError(
            f"execution {record.id} runs {record.workflow_id}@{record.workflow_version},"
            f" not {workflow.key}"
        )


def _input_mismatch(execution_id: str, recorded: Any, given: dict[str, Any]) -> str:
    old = recorded if isinstance(recorded, dict) else {}
    keys = [k for k in {**old, **given} if old.get(k, ...) != given.get(k, ...)]
    shown = "; ".join(
        f"{k}: started with {_short(old.get(k))}, now {_short(given.get(k))}" for k in keys[:3]
    )
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return (
        f"execution {execution_id} was started with another input ({shown}{more}):"
        " leave the input out to resume it, or give a new execution id"
    )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Runtime]] = (
    weakref.WeakKeyDictionary()
)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def shared_runtime(store_url: str | None = None) -> Runtime:
    """The runtime of this event loop for ``store_url`` (started on first use)."""
    url = store_url or default_store_url()
    loop = asyncio.get_running_loop()
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        runtimes = _shared.setdefault(loop, {})
        runtime = runtimes.get(url)
        if runtime is None or not runtime.running:
            if runtime is not None:
                await runtime.close()
            runtime = Runtime(url)
            await runtime.start()
            runtimes[url] = runtime
        return runtime


async def close_shared_runtimes() -> None:
    """Close every shared runtime of the running loop (stops their engines)."""
    runtimes = _shared.pop(asyncio.get_running_loop(), {})
    for runtime in runtimes.values():
        await runtime.close()
