"""A compiled workflow as a graph a page can draw: its nodes and its edges.

Edges come from each node's own :meth:`~agent_node.workflow.ir.NodeSpec.successors`
(the hook compile-time validation uses), so a node type added later is drawn
without a change here. Each edge is labelled by the field that names its
target (``on_timeout``, ``route``, …; a plain ``next`` has no label), a
branch's case by its condition, and a parallel node also points, dashed,
at the join where its branches meet.
"""

from __future__ import annotations

from typing import Any

from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import BranchNode, NodeSpec, ParallelNode

__all__ = ["workflow_graph"]

#: How long a branch condition shown on an edge may be.
_LABEL = 60


def workflow_graph(workflow: CompiledWorkflow) -> dict[str, Any]:
    """``{"start", "nodes": [{id, type, description}], "edges": [{from, to, label, kind}]}``."""
    ir = workflow.ir
    nodes = [
        {"id": node_id, "type": spec.type, "description": spec.description}
        for node_id, spec in ir.nodes.items()
    ]
    edges = [edge for node_id, spec in ir.nodes.items() for edge in _edges(node_id, spec)]
    return {"start": ir.start, "nodes": nodes, "edges": edges}


def _edges(node_id: str, spec: NodeSpec) -> list[dict[str, Any]]:
    if isinstance(spec, BranchNode):
        found = [_edge(node_id, case.next, _short(case.when)) for case in spec.cases]
        return found + ([_edge(node_id, spec.default, "default")] if spec.default else [])
    if isinstance(spec, ParallelNode):
        found = [_edge(node_id, target, "branch") for target in spec.branches]
        return [*found, _edge(node_id, spec.join, "join", kind="join")]
    seen: set[str] = set()
    found = []
    for target in spec.successors():
        if target in seen:
            continue
        seen.add(target)
        found.append(_edge(node_id, target, _field_naming(spec, target)))
    return found


def _field_naming(spec: NodeSpec, target: str) -> str | None:
    """The field of ``spec`` that names ``target`` (None for ``next``)."""
    for name in type(spec).model_fields:
        if name not in ("id", "next") and getattr(spec, name, None) == target:
            return name
    return None


def _edge(source: str, target: str, label: str | None, kind: str = "next") -> dict[str, Any]:
    return {"from": source, "to": target, "label": label, "kind": kind}


def _short(condition: str) -> str:
    return condition if len(condition) <= _LABEL else condition[: _LABEL - 1] + "…"
