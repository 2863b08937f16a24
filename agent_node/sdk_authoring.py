"""The declaring half of the SDK's :class:`~agent_node.sdk.Workflow`.

What a workflow is made of, as its author declares it: the state model
(``@wf.state``), steps (``@wf.step``) and the builders of the other node
types (``wf.branch``, ``wf.wait``, ``wf.delegate``, ``wf.model``, …), each
turning its keyword arguments into the node's spec, recorded in
declaration order with what follows it. Apart from ``sdk.py`` because
declaring is one concern and turning the declarations into a compiled
workflow and running it another: nothing here compiles or runs, and it
checks only what one declaration shows alone (a step is async, a name is
new).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from agent_node.errors import WorkflowDefinitionError
from agent_node.workflow.compiled import CompiledWorkflow, StepFn
from agent_node.workflow.refs import module_ref
from agent_node.workflow.retry import RetryPolicy

__all__ = ["DEFAULT", "Authoring", "Next"]

M = TypeVar("M", bound=type[BaseModel])
F = TypeVar("F", bound=Callable[..., Any])


class _Default:
    def __repr__(self) -> str:
        return "<next in declaration order>"


DEFAULT: Any = _Default()
Next = str | Callable[..., Any] | Mapping[str, Callable[[Any], bool]] | None


class Authoring:
    """A workflow's declarations: its state model and its nodes in order,
    with their specs, what follows each and the step functions."""

    def __init__(self, id: str) -> None:
        self.id = id
        self._state_model: type[BaseModel] | None = None
        self._order: list[str] = []
        self._specs: dict[str, dict[str, Any]] = {}
        self._next: dict[str, Any] = {}
        self._functions: dict[str, StepFn] = {}
        #: What the declarations compile to; None whenever they change.
        self._compiled: CompiledWorkflow | None = None

    def state(self, model: M) -> M:
        """Declare the state model (a pydantic ``BaseModel``)."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise WorkflowDefinitionError(f"@{self.id}.state needs a pydantic BaseModel class")
        self._state_model = model
        self._compiled = None
        return model

    @overload
    def step(
        self,
        fn: F,
        *,
        name: str | None = None,
        next: Next = DEFAULT,
        routes: Sequence[str] | None = None,
        retry: int | RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
    ) -> F: ...

    @overload
    def step(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        next: Next = DEFAULT,
        routes: Sequence[str] | None = None,
        retry: int | RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
    ) -> Callable[[F], F]: ...

    def step(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        next: Next = DEFAULT,
        routes: Sequence[str] | None = None,
        retry: int | RetryPolicy | Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
    ) -> F | Callable[[F], F]:
        """Declare an async step ``(state) -> state | dict of changes | None``
        (or ``continue_as_new(...)``); the function is returned unchanged.

        ``timeout`` (seconds, or ``"30s"``, ``"5m"``) cancels the step at its
        next ``await`` past the deadline: code that blocks the event loop
        (``time.sleep``, a CPU-bound loop, a blocking client) cannot be
        cancelled, holds up every other execution of the process meanwhile,
        and overruns its timeout. Run such code in a thread: ``await
        asyncio.to_thread(blocking, ...)``."""

        def register(func: F) -> F:
            if not inspect.iscoroutinefunction(func):
                raise WorkflowDefinitionError(
                    "a step must be an async function (async def)", node=name or func.__name__
                )
            node_id = name or func.__name__
            spec: dict[str, Any] = {"type": "python", "function": _qualified(func)}
            self._add(node_id, spec, next, retry=retry, timeout=timeout)
            self._functions[node_id] = func
            if routes is not None:
                spec["routes"] = list(routes)
            return func

        return register(fn) if fn is not None else register

    def branch(
        self,
        name: str,
        cases: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        default: str | None = None,
    ) -> None:
        """Go to the first node whose condition (a safe expression over
        ``state``) holds: ``{"approve": "state.score > 0.8"}``."""
        pairs = list(cases.items()) if isinstance(cases, Mapping) else list(cases)
        spec = {
            "type": "branch",
            "cases": [{"when": when, "next": target} for target, when in pairs],
            "default": default,
        }
        self._add(name, spec, None)

    def parallel(
        self, name: str, branches: Sequence[str | Callable[..., Any]], *, join: str
    ) -> None:
        """Run ``branches`` at once; they continue together at the ``join`` node."""
        # Step functions are named when the workflow compiles (see node_of).
        spec = {"type": "parallel", "branches": list(branches), "join": join}
        self._add(name, spec, None)

    def join(self, name: str, *, next: Next = DEFAULT) -> None:
        self._add(name, {"type": "join"}, next)

    def wait(
        self,
        name: str,
        *,
        event: str | None = None,
        input: str | None = None,
        auth: str | None = None,
        duration: float | str | None = None,
        until: str | None = None,
        timeout: float | str | None = None,
        output: str | None = None,
        on_timeout: str | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Park for an external ``event`` (delivered with ``signal``; its payload
        goes to the state key ``output``), for human ``input`` (a prompt; over
        A2A the task asks its caller), for an ``auth``orization (a prompt; over
        A2A the task is AUTH_REQUIRED until the caller's next message), or for
        a timer (``duration``/``until``)."""
        spec = {
            "type": "wait",
            "event": event,
            "input": input,
            "auth": auth,
            "duration": duration,
            "until": until,
            "output": output,
            "on_timeout": on_timeout,
        }
        self._add(name, {k: v for k, v in spec.items() if v is not None}, next, timeout=timeout)

    def delegate(
        self,
        name: str,
        *,
        peer: str | None = None,
        skill: str | None = None,
        tag: str | None = None,
        text: str | None = None,
        data: Sequence[str] | None = None,
        output: str | None = None,
        fields: Mapping[str, str] | None = None,
        timeout: float | str | None = None,
        on_timeout: str | None = None,
        on_failed: str | None = None,
        on_input_required: str | None = None,
        on_auth_required: str | None = None,
        poll: float | None = None,
        retry: RetryPolicy | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Hand a sub-task to a peer agent over A2A and park until its task is
        done (see :mod:`agent_node.nodes.delegate`): ``peer`` by name, or the
        first peer whose card offers ``skill`` / ``tag``; ``text`` (a template)
        and ``data`` (state keys) make the message; ``output`` gets the whole
        answer, ``fields`` single values of it (``{"summary": "data.summary"}``)."""
        spec = {
            "type": "delegate",
            "peer": peer,
            "skill": skill,
            "tag": tag,
            "text": text,
            "data": list(data) if data is not None else None,
            "output": output,
            "fields": dict(fields) if fields else None,
            "on_timeout": on_timeout,
            "on_failed": on_failed,
            "on_input_required": on_input_required,
            "on_auth_required": on_auth_required,
            "poll": poll,
        }
        given = {k: v for k, v in spec.items() if v is not None}
        self._add(name, given, next, retry=retry, timeout=timeout)

    def model(
        self,
        name: str,
        *,
        prompt: str | None = None,
        system: str | None = None,
        model: str | None = None,
        messages: str | None = None,
        output: str | None = None,
        schema: type[BaseModel] | Mapping[str, Any] | str | None = None,
        tools: Sequence[str] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream: bool | None = None,
        timeout: float | str | None = None,
        retry: RetryPolicy | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Ask a model through litellm (see :mod:`agent_node.nodes.model`):
        ``prompt`` and ``system`` are templates over the state; the answer goes
        to ``output``, validated against ``schema`` (a pydantic model, a JSON
        Schema or ``"module:Model"``) with one repair round; ``tools`` names
        MCP tools the model may call; ``stream=False`` asks for the answer
        whole (None: streamed, its text going out live)."""
        if isinstance(schema, type):
            schema = _qualified(schema)
        spec = {
            "type": "model",
            "prompt": prompt,
            "system": system,
            "model": model,
            "messages": messages,
            "output": output,
            "schema": dict(schema) if isinstance(schema, Mapping) else schema,
            "tools": list(tools) if tools else None,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": stream,
        }
        given = {k: v for k, v in spec.items() if v is not None}
        self._add(name, given, next, retry=retry, timeout=timeout)

    def eval(
        self,
        name: str,
        *,
        scorers: Sequence[Mapping[str, Any]],
        threshold: float | None = None,
        on_fail: str | None = None,
        revise: str | Callable[..., Any] | None = None,
        feedback: str | None = None,
        max_revisions: int | None = None,
        exhausted: str | None = None,
        route: str | Callable[..., Any] | None = None,
        output: str | None = None,
        timeout: float | str | None = None,
        retry: RetryPolicy | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Score the work so far (see :mod:`agent_node.nodes.eval`): ``scorers``
        are ``{"type": "llm_judge", "rubric": …, "input": "{{ state.draft }}"}``,
        ``{"type": "assertion", "expr": …}``, ``{"type": "latency"|"cost",
        "max": …}``; ``on_fail="retry_with_feedback"`` re-runs ``revise`` with
        the reasons in the state key ``feedback``, at most ``max_revisions``
        times. ``timeout`` bounds an attempt, its judges' calls included."""
        spec = {
            "type": "eval",
            "scorers": [dict(scorer) for scorer in scorers],
            "threshold": threshold,
            "on_fail": on_fail,
            "revise": revise,
            "feedback": feedback,
            "max_revisions": max_revisions,
            "exhausted": exhausted,
            "route": route,
            "output": output,
        }
        given = {k: v for k, v in spec.items() if v is not None}
        self._add(name, given, next, retry=retry, timeout=timeout)

    def tool(
        self,
        name: str,
        *,
        tool: str,
        server: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        output: str | None = None,
        timeout: float | str | None = None,
        retry: RetryPolicy | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Call ``tool`` on an MCP server of the node (see :mod:`agent_node.nodes.tool`);
        ``arguments`` may hold templates (``"{{ state.query }}"`` keeps its type)."""
        spec = {
            "type": "tool",
            "tool": tool,
            "server": server,
            "arguments": dict(arguments) if arguments else None,
            "output": output,
        }
        given = {k: v for k, v in spec.items() if v is not None}
        self._add(name, given, next, retry=retry, timeout=timeout)

    def http(
        self,
        name: str,
        *,
        url: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: str | Mapping[str, Any] | Sequence[Any] | None = None,
        output: str | None = None,
        fields: Mapping[str, str] | None = None,
        status_output: str | None = None,
        expect: Sequence[int] | None = None,
        max_bytes: int | None = None,
        timeout: float | str | None = None,
        retry: RetryPolicy | None = None,
        next: Next = DEFAULT,
    ) -> None:
        """Send one HTTP request (see :mod:`agent_node.nodes.http`); the answer
        goes to ``output`` / ``fields`` / ``status_output``."""
        spec = {
            "type": "http",
            "url": url,
            "method": method,
            "headers": dict(headers) if headers else None,
            "query": dict(query) if query else None,
            "body": body,
            "output": output,
            "fields": dict(fields) if fields else None,
            "status_output": status_output,
            "expect": list(expect) if expect else None,
            "max_bytes": max_bytes,
        }
        given = {k: v for k, v in spec.items() if v is not None}
        self._add(name, given, next, retry=retry, timeout=timeout)

    def end(
        self,
        name: str = "end",
        *,
        status: str = "completed",
        message: str | None = None,
        output: Sequence[str] | None = None,
    ) -> None:
        spec = {"type": "end", "status": status, "message": message, "output": output}
        self._add(name, {k: v for k, v in spec.items() if v is not None}, None)

    def node_of(self, target: str | Callable[..., Any]) -> str:
        """The node ``target`` names: a node id, or a step function as it
        was declared (its ``name=``, else its ``__name__``)."""
        if isinstance(target, str):
            return target
        names = [node_id for node_id, fn in self._functions.items() if fn is target]
        if len(names) > 1:
            raise WorkflowDefinitionError(
                f"{target.__name__} is declared as {len(names)} steps"
                f" ({', '.join(names)}): name the node instead"
            )
        return names[0] if names else target.__name__

    def named_spec(self, node_id: str) -> dict[str, Any]:
        """A copy of the node's spec with the step functions it points at
        (parallel branches, an eval's ``revise`` and ``route``) as node ids:
        named once all steps are declared, so a step declared later counts."""
        spec = dict(self._specs[node_id])
        if "branches" in spec:
            spec["branches"] = [self.node_of(b) for b in spec["branches"]]
        for key in ("revise", "route"):
            if callable(spec.get(key)):
                spec[key] = self.node_of(spec[key])
        return spec

    def _add(
        self,
        node_id: str,
        spec: dict[str, Any],
        next: Next,
        *,
        retry: Any = None,
        timeout: Any = None,
    ) -> None:
        if node_id in self._specs:
            raise WorkflowDefinitionError("two nodes with this name", node=node_id)
        if retry is not None:
            spec["retry"] = retry.model_dump() if isinstance(retry, RetryPolicy) else retry
        if timeout is not None:
            spec["timeout"] = timeout
        self._order.append(node_id)
        self._specs[node_id] = spec
        self._next[node_id] = next
        self._compiled = None


def _qualified(obj: Callable[..., Any] | type) -> str:
    """``module:qualname``, the module as another process finds it (a
    script's file, not ``__main__``: :func:`~agent_node.workflow.refs.module_ref`)."""
    return f"{module_ref(obj.__module__) or obj.__module__}:{obj.__qualname__}"
