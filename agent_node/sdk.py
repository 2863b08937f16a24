"""The Python SDK: author a workflow with decorators, run it durably.

::

    wf = Workflow("greet", version="1")

    @wf.state
    class State(BaseModel):
        name: str
        greeting: str = ""

    @wf.step
    async def hello(state: State) -> State:
        return state.model_copy(update={"greeting": f"Hello, {state.name}"})

    result = wf.run_sync(State(name="Ada"))

Nodes follow each other in declaration order unless ``next=`` says
otherwise; the last one ends the execution. ``next`` takes a node name, a
step function, ``None`` (end here), a function of the state returning a node
name (with ``routes=`` listing the names it may return), or a dict mapping
node names to predicates (the first that holds wins).

The declarations (the state model, steps, the builders of the other node
types) are :mod:`agent_node.sdk_authoring`; this module compiles them and
runs the workflow. It sits above the engine (it composes the workflow
layer, the engine and the runtime); ``agent_node.workflow`` knows nothing
of it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, cast, overload

from pydantic import BaseModel

from agent_node.errors import UsageError, WorkflowDefinitionError
from agent_node.results import RunResult
from agent_node.sdk_authoring import DEFAULT, Authoring
from agent_node.workflow.budget import Budget
from agent_node.workflow.compiled import CompiledWorkflow, RouteFn, StateT
from agent_node.workflow.compiler import compile_workflow
from agent_node.workflow.ir import NodeSpec, WorkflowIR
from agent_node.workflow.refs import module_ref, refuse_run_while_loading

__all__ = ["Workflow"]

#: The model of a state given to run: what its result holds.
S = TypeVar("S", bound=BaseModel)


class Workflow(Authoring, Generic[StateT]):
    """A workflow declared in Python (see the module's documentation).

    For a type checker, ``wf: Workflow[Expense] = Workflow(...)`` says which
    state model ``@wf.state`` declares (written before the model, as an
    annotation may be): runs, resumes included, then return a
    ``RunResult[Expense]``. Without it, a run given an ``Expense`` returns a
    ``RunResult[Expense]`` and a resume a ``RunResult[BaseModel]``."""

    def __init__(
        self,
        id: str,
        version: str = "1",
        *,
        description: str | None = None,
        start: str | None = None,
        store: str | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(id)
        #: What each execution may spend on models (tokens, cost, calls).
        self.budget = Budget.model_validate(budget) if isinstance(budget, Mapping) else budget
        self.version = str(version)
        self.description = description
        self.start = start
        self.store = store
        self._routers: dict[str, RouteFn] = {}
        # In this __init__, not the base's: it looks two frames up, at who made it.
        self._module = _caller_module()

    # -- compiling -------------------------------------------------------------

    def compile(self) -> CompiledWorkflow[StateT]:
        """The validated, compiled workflow (cached until the definition changes)."""
        if self._compiled is None:
            self._compiled = self._build()
        # Its state model is the one @state declared, which StateT stands for.
        return cast("CompiledWorkflow[StateT]", self._compiled)

    def _build(self) -> CompiledWorkflow:
        if self._state_model is None:
            raise WorkflowDefinitionError(f"workflow {self.id!r} has no @state model")
        if not self._order:
            raise WorkflowDefinitionError(f"workflow {self.id!r} has no nodes")
        nodes: dict[str, NodeSpec] = {}
        for index, node_id in enumerate(self._order):
            spec = self.named_spec(node_id)
            following = self._order[index + 1] if index + 1 < len(self._order) else None
            self._resolve_next(node_id, spec, self._next[node_id], following)
            nodes[node_id] = _parse(node_id, spec)
        ir = WorkflowIR(
            id=self.id,
            version=self.version,
            description=self.description,
            budget=self.budget,
            state_schema=self._state_model.model_json_schema(),
            start=self.start or self._order[0],
            nodes=nodes,
        )
        return compile_workflow(
            ir,
            self._state_model,
            functions=self._functions,
            routers=self._routers,
            ref=self._ref(),
        )

    def _resolve_next(
        self, node_id: str, spec: dict[str, Any], nxt: Any, following: str | None
    ) -> None:
        if spec["type"] in {"branch", "parallel", "end"}:
            return
        if nxt is DEFAULT:
            spec["next"] = following
        elif nxt is None or isinstance(nxt, str):
            spec["next"] = nxt
        elif callable(nxt) and any(fn is nxt for fn in self._functions.values()):
            spec["next"] = self.node_of(nxt)  # a step function: the node it was declared as
        elif isinstance(nxt, Mapping):
            self._routers[node_id] = _predicate_router(node_id, dict(nxt))
            spec.update(routes=list(nxt), dynamic_next=True)
        elif callable(nxt) and spec["type"] == "python":
            self._routers[node_id] = nxt
            spec.setdefault("routes", list(self._order))
            spec["dynamic_next"] = True
        else:
            raise WorkflowDefinitionError(f"cannot route by {nxt!r}", node=node_id, field="next")

    def _ref(self) -> str | None:
        module = sys.modules.get(self._module or "")
        if module is None:
            return None
        name = next((k for k, v in vars(module).items() if v is self), None)
        if name is None:
            return None
        # A script or a file loaded by path: other processes find it by path.
        where = module_ref(module.__name__)
        return f"{where}:{name}" if where else None

    # -- running ---------------------------------------------------------------

    @overload
    async def run(
        self, state: S, *, execution_id: str | None = None, store: str | None = None
    ) -> RunResult[S]: ...

    @overload
    async def run(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        store: str | None = None,
    ) -> RunResult[StateT]: ...

    async def run(
        self,
        state: BaseModel | Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        store: str | None = None,
    ) -> RunResult[Any]:
        """Run durably until the execution ends or waits for an external event.

        Re-running with the ``execution_id`` of an interrupted execution
        resumes it; nodes that completed are not run again.

        Called while agent-node imports the module only to load its workflow
        (``agent-node run file.py:wf``, ``signal``, a worker), it runs nothing:
        the module's top-level code ends there (see :mod:`agent_node.workflow.refs`).
        """
        refuse_run_while_loading(f"{self.id}.run()")
        from agent_node.runtime import shared_runtime

        runtime = await shared_runtime(store or self.store)
        return await runtime.run(self.compile(), state, execution_id=execution_id)

    @overload
    def run_sync(
        self, state: S, *, execution_id: str | None = None, store: str | None = None
    ) -> RunResult[S]: ...

    @overload
    def run_sync(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        store: str | None = None,
    ) -> RunResult[StateT]: ...

    def run_sync(
        self,
        state: BaseModel | Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        store: str | None = None,
    ) -> RunResult[Any]:
        """``run`` in a fresh event loop (not from inside a running one)."""
        refuse_run_while_loading(f"{self.id}.run_sync()")
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError("run_sync was called inside a running event loop: await run() instead")
        return asyncio.run(self._run_once(state, execution_id, store))

    async def _run_once(
        self,
        state: BaseModel | Mapping[str, Any] | None,
        execution_id: str | None,
        store: str | None,
    ) -> RunResult[Any]:
        from agent_node.runtime import Runtime

        async with Runtime(store or self.store) as runtime:
            return await runtime.run(self.compile(), state, execution_id=execution_id)


def _parse(node_id: str, spec: dict[str, Any]) -> NodeSpec:
    from pydantic import ValidationError

    from agent_node.problems import problems
    from agent_node.workflow.ir import node_class, parse_node

    try:
        return parse_node(node_id, spec)
    except ValidationError as exc:
        first = problems(exc, node_class(spec))[0]
        raise WorkflowDefinitionError(
            first.message, node=node_id, field=first.field or None
        ) from None
    except ValueError as exc:
        raise WorkflowDefinitionError(str(exc), node=node_id, field="type") from None


def _predicate_router(node_id: str, predicates: dict[str, Callable[[Any], bool]]) -> RouteFn:
    def route(state: Any) -> str | None:
        for target, predicate in predicates.items():
            if predicate(state):
                return target
        raise UsageError(f"node {node_id!r}: no route predicate held ({', '.join(predicates)})")

    return route


def _caller_module() -> str | None:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    return caller.f_globals.get("__name__") if caller else None
