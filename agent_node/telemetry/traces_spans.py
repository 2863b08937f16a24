"""Spans built from what the ledger says ended (:mod:`.traces_ledger`), with
the ids of :mod:`.traces_ids` and the times the log recorded.

What a node's trace looks like::

    invoke_agent <node>            the execution (INTERNAL; parent: the caller's span)
    ├── python step1               a node visit: first start → its end
    ├── model write                · failed attempts are its "exception" events
    │   └── chat <model>           · GenAI conventions (CLIENT; the last attempt's run)
    └── delegate ask               · waits and delegation news are its events
        └── invoke_agent <peer>    the call (CLIENT; its id is the one the peer got)
            └── (the peer's execution span, in the peer's process)

A visit's model call and its calls out of the node are built by
:mod:`.traces_calls`.

Spans are handed to the batch processor written already
(:class:`~.traces_wire.Encoded`): no tracer, no sampler, no id generator is
involved, so their ids, parents and times are exactly the derived and
recorded ones; what a node's spans repeat — its name and attributes, an
execution's ids — is written once, so a visit's span costs a few
microseconds of the event loop. A trace whose ``traceparent`` says "not
sampled" gets none (the ledger drops it).
"""

from __future__ import annotations

from collections.abc import Callable
from math import trunc
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from agent_node.store.records import ExecutionRecord
from agent_node.telemetry import traces_wire as wire
from agent_node.telemetry.traces_calls import CALLS, chat_span
from agent_node.telemetry.traces_ids import (
    Origin,
    call_span_id,
    execution_span_digests,
    visit_at,
    visit_span_id,
)
from agent_node.telemetry.traces_ledger import ExecutionEnd, Plain, VisitEnd, data_of
from agent_node.workflow.ir import NodeSpec

__all__ = ["ONE", "Ids", "NodeParts", "SpanFactory", "SpecOf"]

#: Executions whose ids are kept (for their visits), and nodes whose spans'
#: fixed parts are, at most.
_KEPT = 10_000
#: Visit types whose ends need the event's data parsed.
_WITH_DATA = frozenset({"model", "eval"})
#: An execution span's attributes, by their writers or written once.
_EXECUTION_ID = wire.text_attribute("agent_node.execution.id")
_CONVERSATION = wire.text_attribute("gen_ai.conversation.id")
_CALLER = wire.text_attribute("agent_node.caller")
_STATUSES = {
    status: wire.attributes({"agent_node.execution.status": status})
    for status in ("completed", "failed", "canceled")
}
_FAILED = wire.attributes({"error.type": "_OTHER"})
#: Bytes of a visit span's trace and parent fields, and of its id and times.
_EXECUTION_PART, _ID_AND_TIMES = 28, 28
#: A visit span id of 0 is 1 (as :data:`~.traces_wire.ID_AND_TIMES` takes it).
ONE = 1 << 56
#: A lookup of a visit's node spec: (execution's workflow id, version, ref, node) -> spec.
SpecOf = Callable[[str, str, str | None, str], NodeSpec | None]


def _id(span_id: int) -> bytes:
    return span_id.to_bytes(8, "big")


def _little(span_id: int) -> int:
    """The number whose little-endian bytes are ``span_id``'s big-endian ones."""
    return int.from_bytes(span_id.to_bytes(8, "big"), "little")


class NodeParts:
    """What every span of one node's visits shares, written once."""

    __slots__ = (
        "attributes",
        "first",
        "head",
        "lead",
        "local_tail",
        "plain",
        "row",
        "spec",
        "type",
    )

    def __init__(self, spec: NodeSpec | None, node: str) -> None:
        self.spec = spec
        self.type = spec.type if spec is not None else "unknown"
        #: Its spans are the visit's alone (no model call, no outgoing call).
        self.plain = spec is not None and self.type not in _WITH_DATA and self.type not in CALLS
        self.head = wire.head(f"{self.type} {node}", wire.INTERNAL)
        # Few attributes: each costs the exporter more than the span's own
        # fields; the execution's are on its span.
        self.attributes = wire.attributes(
            {"agent_node.node.id": node, "agent_node.node.type": self.type}
        )
        self.local_tail = wire.local_tail(self.attributes)
        #: Its first visit's half of the span id (:func:`.traces_ids.visit_at`),
        #: as :data:`~.traces_wire.ID_AND_TIMES` takes it.
        self.first = _little(visit_at(f"{node}/1"))
        #: A first visit's span up to its execution's part (:meth:`SpanFactory.write_plain`):
        #: its tag, name, kind, attributes and flags (protobuf takes fields in any order).
        fixed = self.head + self.local_tail
        self.lead = wire.span_tag(len(fixed) + _EXECUTION_PART + _ID_AND_TIMES) + fixed
        #: The metrics' series its completed visits' run times go into, once
        #: the follower has counted one (:class:`~.traces_follow.Follower`).
        self.row: list[float] | None = None


class Ids:
    """An execution's origin and ids, the parts of its visits' spans they
    make, and its workflow's nodes."""

    __slots__ = ("fixed", "nodes", "origin", "span_id", "visits")

    def __init__(self, execution_id: str, origin: Origin, nodes: dict[str, NodeParts]) -> None:
        self.origin = origin
        span_id, visits = execution_span_digests(execution_id)
        self.span_id = span_id
        #: Its visits' trace and parent fields (:data:`_EXECUTION_PART` bytes).
        self.fixed = b"".join((b"\x0a\x10", origin.trace, b"\x22\x08", span_id))
        #: Its half of its visits' span ids (:func:`.traces_ids.visit_span_mix`),
        #: as :data:`~.traces_wire.ID_AND_TIMES` takes it.
        self.visits = int.from_bytes(visits, "little")
        self.nodes = nodes


class SpanFactory:
    """Builds a node's spans; ``spec_of`` finds a visit's node spec."""

    def __init__(
        self, resource: Resource, scope: InstrumentationScope, node: str, spec_of: SpecOf
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.node = node
        self._spec_of = spec_of
        #: Spans of visits that ran once, written as they ended (:meth:`write_plain`),
        #: until whoever hands spans over takes them.
        self.written: list[bytes] = []
        #: Each execution's trace id and span id, written once for all its visits.
        self._ids: dict[str, Ids] = {}
        #: Each workflow's nodes, by workflow id and version, then node id.
        self._nodes: dict[tuple[str, str], dict[str, NodeParts]] = {}
        self._workflows: dict[tuple[str, str], bytes] = {}
        self._execution_head = wire.head(f"invoke_agent {node}", wire.INTERNAL)

    def encoded(self, data: bytes) -> wire.Encoded:
        return wire.Encoded(data, self.resource, self.scope)

    def ids(self, record: ExecutionRecord, origin: Origin) -> Ids:
        return Ids(record.id, origin, self.nodes_of(record))

    def _ids_of(self, record: ExecutionRecord, origin: Origin) -> Ids:
        found = self._ids.get(record.id)
        if found is None:
            if len(self._ids) >= _KEPT:  # executions whose end this process never sees
                self._ids.clear()
            found = self._ids[record.id] = self.ids(record, origin)
        return found

    def nodes_of(self, record: ExecutionRecord) -> dict[str, NodeParts]:
        """The parts of the spans of ``record``'s workflow's nodes, by node
        (:meth:`node_parts` makes them)."""
        key = (record.workflow_id, record.workflow_version)
        found = self._nodes.get(key)
        if found is None:
            if len(self._nodes) >= _KEPT:
                self._nodes.clear()
            found = self._nodes[key] = {}
        return found

    def node_parts(self, record: ExecutionRecord, ids: Ids, node: str) -> NodeParts:
        """The parts of ``node``'s spans in ``record``'s workflow (``ids.nodes``)."""
        found = ids.nodes.get(node)
        if found is None:
            spec = self._spec_of(
                record.workflow_id, record.workflow_version, record.workflow_ref, node
            )
            found = ids.nodes[node] = NodeParts(spec, node)
        return found

    def _workflow(self, workflow: str, version: str) -> bytes:
        """The attributes every execution span of a workflow has, written once."""
        found = self._workflows.get((workflow, version))
        if found is None:
            if len(self._workflows) >= _KEPT:
                self._workflows.clear()
            found = self._workflows[(workflow, version)] = wire.attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": self.node,
                    "agent_node.workflow.id": workflow,
                    "agent_node.workflow.version": version,
                }
            )
        return found

    def execution(self, end: ExecutionEnd) -> bytes:
        """The execution's span, written (its visits' ids are forgotten)."""
        record = end.execution
        ids = self._ids.pop(record.id, None) or self.ids(record, end.origin)
        return self.execution_span(record, ids, end.at, end.status, end.data)

    def execution_span(
        self, record: ExecutionRecord, ids: Ids, at: float, status: str, data: str | None
    ) -> bytes:
        """:meth:`execution`, given the ending's parts and the execution's ``ids``:
        its fields written in one join, those of its workflow and status made once."""
        workflow = self._workflows.get((record.workflow_id, record.workflow_version))
        if workflow is None:
            workflow = self._workflow(record.workflow_id, record.workflow_version)
        more = b""  # what most executions' spans do not have
        if record.context_id:
            more = _CONVERSATION(record.context_id)
        caller = record.meta().get("caller")  # record.caller, its metadata parsed already
        if isinstance(caller, str):
            more += _CALLER(caller)
        if status == "failed":
            more += _FAILED + wire.status(wire.ERROR, str(data_of(data).get("error") or "failed"))
        start, end = trunc(record.created_at * 1e9), trunc(at * 1e9)
        origin = ids.origin
        parent = origin.parent
        body = b"".join(
            (
                b"\x0a\x10",
                origin.trace,
                b"\x12\x08",
                ids.span_id,
                b"" if parent is None else b"\x22\x08" + parent,
                self._execution_head,
                wire.TIMES(0x39, start, 0x41, end if end > start else start),
                workflow,
                _EXECUTION_ID(record.id),
                _STATUSES.get(status) or wire.attributes({"agent_node.execution.status": status}),
                more,
                # The trace's root, or the caller's span's child, in another process.
                wire.LOCAL_FLAGS if parent is None else wire.REMOTE_FLAGS,
            )
        )
        return wire.span_tag(len(body)) + body

    def write_plain(
        self,
        record: ExecutionRecord,
        origin: Origin,
        node_id: str,
        number: int,
        start: float,
        at: float,
    ) -> bool:
        """Write the span of a visit that ran once (:data:`~.traces_ledger.Plain`)
        to :attr:`written`; False when its node's spans are more than the
        visit's alone (:meth:`visit` writes those). Most visits' spans are
        written here: its node's part and its execution's, made once, and
        its id and times packed."""
        ids = self._ids.get(record.id)
        if ids is None:
            ids = self._ids_of(record, origin)
        node = ids.nodes.get(node_id) or self.node_parts(record, ids, node_id)
        if not node.plain or number != 1:
            return False
        self.written.append(plain_span(node, ids, start, at))
        return True

    def plain(self, end: Plain) -> bytes | None:
        """The span :meth:`write_plain` writes for ``end``, handed back instead
        of kept; None when it writes none."""
        record, origin, node_id, number, start, at, _ = end
        if not self.write_plain(record, origin, node_id, number, start, at):
            return None
        return self.written.pop()

    def visit(self, end: VisitEnd) -> list[wire.Encoded]:
        """The visit's span and, by its node type, its model call or outgoing call."""
        record, visit, origin = end.execution, end.visit, end.origin
        ids = self._ids_of(record, origin)
        node = self.node_parts(record, ids, visit.node)
        key = f"{record.id}/{visit.node}/{visit.visit}"
        start = visit.start if visit.start is not None else end.at
        start_ns, end_ns = wire.ns(start), wire.ns(end.at)
        end_ns = max(start_ns, end_ns)
        trace, parent = ids.origin.trace, ids.span_id
        once = visit.attempt == visit.visit == 1 and not (visit.failures or visit.notes)
        if once and end.outcome == "completed":  # read back from the log, say
            written = self.plain((record, origin, visit.node, 1, start, end.at, end.data))
            if written is not None:
                return [self.encoded(written)]
        extra: dict[str, Any] = {}  # 1 visit, 1 attempt, completed: said by silence
        if visit.visit > 1:
            extra["agent_node.visit"] = visit.visit
        if visit.attempt > 1:
            extra["agent_node.attempts"] = visit.attempt
        if end.outcome != "completed":
            extra["agent_node.visit.outcome"] = end.outcome
        status = b""
        failed = end.outcome == "failed"
        data = data_of(end.data) if node.type in _WITH_DATA or failed else {}
        if failed:
            extra["error.type"] = str(data.get("type") or "_OTHER")
            status = wire.status(wire.ERROR, str(data.get("error") or "failed"))
        span_id = visit_span_id(key)
        tail = node.attributes
        if extra:
            tail += wire.attributes(extra)
        if visit.failures or visit.notes:
            tail += _events_of(end)
        spans = [
            self.encoded(
                wire.span(trace, span_id, parent, False, node.head, start_ns, end_ns, tail + status)
            )
        ]
        usage = data.get("usage")
        if isinstance(usage, dict) and usage.get("model"):
            chat = chat_span(end, key, trace, _id(span_id), start, data, usage)
            spans.append(self.encoded(chat))
        call = CALLS.get(node.type)
        if call is not None and node.spec is not None:
            name, call_attributes = call(node.spec, end)
            call_id = call_span_id(origin.traceparent, key)
            head = wire.head(name, wire.CLIENT)
            tail = wire.attributes(call_attributes) + status
            spans.append(
                self.encoded(
                    wire.span(trace, call_id, _id(span_id), False, head, start_ns, end_ns, tail)
                )
            )
        return spans


def plain_span(node: NodeParts, ids: Ids, start: float, at: float) -> bytes:
    """The span of a visit that ran once, its node's spans the visit's alone:
    its node's part and its execution's, made once, and its id and times
    packed (times in ns as :func:`~.traces_wire.ns` has them)."""
    start_ns, end_ns = trunc(start * 1e9), trunc(at * 1e9)
    packed = wire.ID_AND_TIMES(
        0x12, 8, (ids.visits ^ node.first) or ONE,  # visit_span_mix
        0x39, start_ns, 0x41, end_ns if end_ns > start_ns else start_ns,
    )  # fmt: skip
    return b"".join((node.lead, ids.fixed, packed))


def _events_of(end: VisitEnd) -> bytes:
    """Failed attempts as ``exception`` events; waits and delegation news as theirs."""
    found: list[tuple[float, bytes]] = []
    for at, attempt, text in end.visit.failures or ():
        data = data_of(text)
        attributes: dict[str, Any] = {
            "exception.type": str(data.get("type") or "Exception"),
            "exception.message": str(data.get("error") or ""),
            "agent_node.attempt": attempt,
        }
        if isinstance(data.get("retry_at"), int | float):
            attributes["agent_node.retry_at"] = float(data["retry_at"])
        if data.get("throttled"):
            attributes["agent_node.throttled"] = True
        found.append((at, wire.event(wire.ns(at), "exception", attributes)))
    for at, kind, text in end.visit.notes or ():
        data = data_of(text)
        noted = {f"agent_node.{k}": v for k, v in data.items() if k in _NOTED and _plain(v)}
        found.append((at, wire.event(wire.ns(at), kind, noted)))
    return b"".join(event for _, event in sorted(found, key=lambda pair: pair[0]))


#: What of a wait's or delegation's data becomes attributes of its event.
_NOTED = frozenset({"kind", "event", "deadline", "expired", "peer", "task_id", "turn"})


def _plain(value: object) -> bool:
    return isinstance(value, str | bool | int | float)
