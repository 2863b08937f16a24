"""Compile-time validation, shared by the Python SDK and the YAML loader.

:func:`compile_workflow` checks a :class:`WorkflowIR` against its state model
and its bound functions, using the four hooks every node spec offers
(``successors``, ``expressions``, ``templates``, ``writes``) plus ``can_end``
and three checks of one node type each (a parallel's join, a python node's
function, the new input of an end that continues as new), and compiles
every expression and template once. The first mistake found is raised as a
:class:`WorkflowDefinitionError` naming the node and field. The order is
fixed: ``start``, then the bound functions and routers, then each node in
map order, then the graph (reachability, a way to an end, every path of a
parallel's branches reaching its join or an end node).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from agent_node.errors import WorkflowDefinitionError
from agent_node.workflow.compiled import CompiledWorkflow, Expression, RouteFn, StepFn, Template
from agent_node.workflow.expressions import ExpressionError, compile_expression
from agent_node.workflow.ir import EndNode, JoinNode, NodeSpec, ParallelNode, PythonNode, WorkflowIR
from agent_node.workflow.templates import TemplateError, compile_template

__all__ = ["compile_workflow"]

_Key = tuple[str, str]
#: Fields that hold text, never the id of a successor.
_NOT_TARGETS = frozenset({"type", "id", "description", "function"})


def compile_workflow(
    ir: WorkflowIR,
    state_model: type[BaseModel],
    *,
    functions: Mapping[str, StepFn] | None = None,
    routers: Mapping[str, RouteFn] | None = None,
    ref: str | None = None,
    file: str | None = None,
) -> CompiledWorkflow:
    """Validate ``ir`` and bind everything it needs; raises ``WorkflowDefinitionError``."""
    checker = _Checker(ir, state_model, file)
    functions, routers = dict(functions or {}), dict(routers or {})
    checker.check_start()
    checker.check_bindings(functions, "function")
    checker.check_bindings(routers, "routes")
    expressions: dict[_Key, Expression] = {}
    templates: dict[_Key, Template] = {}
    for node_id, spec in ir.nodes.items():
        checker.check_node(node_id, spec, has_function=node_id in functions)
        expressions.update(checker.expressions(node_id, spec))
        templates.update(checker.templates(node_id, spec))
    checker.check_graph()
    checker.check_parallels(routed=frozenset(routers))
    return CompiledWorkflow(
        ir=ir,
        state_model=state_model,
        functions=functions,
        routers=routers,
        expressions=expressions,
        templates=templates,
        ref=ref,
    )


class _Checker:
    """The checks of one workflow; each raises the first mistake it finds."""

    def __init__(self, ir: WorkflowIR, state_model: type[BaseModel], file: str | None) -> None:
        self.ir = ir
        self.file = file
        self.keys = frozenset(state_model.model_fields)
        fields = state_model.model_fields.items()
        self.required = frozenset(key for key, info in fields if info.is_required())

    def error(
        self, message: str, node: str | None = None, field: str | None = None
    ) -> WorkflowDefinitionError:
        return WorkflowDefinitionError(message, file=self.file, node=node, field=field)

    def check_bindings(self, bound: Mapping[str, Any], field: str) -> None:
        for node_id in bound:
            if not isinstance(self.ir.nodes.get(node_id), PythonNode):
                raise self.error("bound to a node that is not a python node", node_id, field)

    def check_start(self) -> None:
        if self.ir.start not in self.ir.nodes:
            raise self.error(f"{self.ir.start!r} is not a node ({self.known()})", field="start")

    def check_node(self, node_id: str, spec: NodeSpec, *, has_function: bool) -> None:
        for target in spec.successors():
            if target not in self.ir.nodes:
                field = _field_of(spec, target)
                raise self.error(f"{target!r} is not a node ({self.known()})", node_id, field)
        if isinstance(spec, ParallelNode) and not isinstance(
            self.ir.nodes.get(spec.join), JoinNode
        ):
            raise self.error(f"join {spec.join!r} is not a node of type join", node_id, "join")
        if isinstance(spec, PythonNode) and not has_function:
            raise self.error("a python node needs a function (none is bound)", node_id, "function")
        for field, key in spec.writes():
            if key not in self.keys:
                known = ", ".join(sorted(self.keys))
                raise self.error(f"unknown state key {key!r} (known: {known})", node_id, field)
        if isinstance(spec, EndNode) and spec.continue_as_new is not None:
            self.check_new_input(node_id, spec.continue_as_new)

    def check_new_input(self, node_id: str, given: Mapping[str, Any]) -> None:
        """A new input names every required key: it is a whole input, not a change."""
        missing = sorted(self.required - set(given))
        if missing:
            raise self.error(
                f"the new input lacks required state key(s) {missing}"
                " (continue_as_new gives a whole input; the keys left out take their defaults)",
                node_id,
                "continue_as_new",
            )

    def expressions(self, node_id: str, spec: NodeSpec) -> Iterable[tuple[_Key, Expression]]:
        for field, source in spec.expressions():
            try:
                yield (node_id, field), compile_expression(source, self.keys)
            except ExpressionError as exc:
                raise self.error(str(exc), node_id, field) from None

    def templates(self, node_id: str, spec: NodeSpec) -> Iterable[tuple[_Key, Template]]:
        for field, source in spec.templates():
            try:
                yield (node_id, field), compile_template(source, self.keys)
            except TemplateError as exc:
                raise self.error(str(exc), node_id, field) from None

    def check_graph(self) -> None:
        nodes = self.ir.nodes
        reachable = _closure([self.ir.start], lambda node_id: nodes[node_id].successors())
        for node_id in nodes:
            if node_id not in reachable:
                raise self.error(f"unreachable from start {self.ir.start!r}", node_id)
        predecessors: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        for node_id, spec in nodes.items():
            for target in spec.successors():
                predecessors[target].append(node_id)
        ends = [node_id for node_id, spec in nodes.items() if spec.can_end()]
        can_finish = _closure(ends, predecessors.__getitem__)
        for node_id in nodes:
            if node_id not in can_finish:
                raise self.error("no path from this node to an end (a loop without exit?)", node_id)

    def check_parallels(self, routed: frozenset[str]) -> None:
        """Every path from a parallel's branches reaches its join or an end
        node. One that stops anywhere else (a node without ``next``) ends
        its branch without arriving, and the join would wait for it for
        ever. The nodes in ``routed`` choose their next node when they run,
        out of this check's sight: the engine fails an execution whose join
        can no longer fire."""
        for node_id, spec in self.ir.nodes.items():
            if isinstance(spec, ParallelNode):
                self.check_branches(node_id, spec, routed)

    def check_branches(self, node_id: str, parallel: ParallelNode, routed: frozenset[str]) -> None:
        nodes, join = self.ir.nodes, parallel.join

        def step(current: str) -> list[str]:
            spec = nodes[current]
            if current == join or current in routed or isinstance(spec, EndNode):
                return []
            # A nested parallel's own branches are its own check; here its
            # paths go on from its join.
            return [spec.join] if isinstance(spec, ParallelNode) else spec.successors()

        inside = _closure(parallel.branches, step)
        for current, spec in nodes.items():
            stops = current in inside and current != join and current not in routed
            if stops and spec.can_end() and not isinstance(spec, EndNode):
                raise self.error(
                    f"the branches of parallel {node_id!r} can stop here without reaching"
                    f" its join {join!r}, which would then wait for ever: give this node a"
                    f" next that leads to {join!r} (or to an end node, which ends the whole"
                    " execution)",
                    current,
                    "next",
                )

    def known(self) -> str:
        return f"known: {', '.join(self.ir.nodes)}"


def _closure(roots: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
    """Every id reachable from ``roots`` by repeatedly applying ``step``."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        node_id = pending.pop()
        if node_id not in seen:
            seen.add(node_id)
            pending.extend(step(node_id))
    return seen


def _field_of(spec: NodeSpec, target: str) -> str:
    """The field of ``spec`` that names ``target``: ``next``, ``cases[1].next``, ..."""
    if getattr(spec, "next", None) == target:
        return "next"
    for name in type(spec).model_fields:
        value = getattr(spec, name)
        if name in _NOT_TARGETS:
            continue
        if value == target:
            return name
        if isinstance(value, list):
            for index, item in enumerate(value):
                if item == target:
                    return f"{name}[{index}]"
                if isinstance(item, BaseModel) and getattr(item, "next", None) == target:
                    return f"{name}[{index}].next"
    return "next"
