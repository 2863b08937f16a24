"""The ids of the spans a node builds from its commits: derived, never drawn.

A span built from the event log must have the same id whichever process
builds it and however often the work behind it was retried, so that the
spans emitted earlier — by a peer, or by this node before a crash — find
their parent:

* an execution's span: from its id (``execution:<id>``);
* a node visit's: from its idempotency key, ``<execution>/<node>/<visit>``
  (its execution's half XOR its node's and visit's: :func:`visit_span_id`);
* the model call of a model or eval visit: ``chat:<key>``;
* a call that leaves the node (a delegation, an HTTP or a tool request): the
  span id its ``traceparent`` carries —
  :func:`agent_node.tracing.child_traceparent` of the execution's trace
  context and the visit's key — so the peer's spans hang under it.

An id is the first 64 bits of a SHA-256 (a visit's, of two). The trace id and the parent of an
execution's span come from its ``metadata.traceparent``; an execution whose
trace the node made up (``metadata.trace_root``) is its trace's root.
This module imports nothing of OpenTelemetry: its ids are plain integers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from agent_node.store.records import parsed_metadata
from agent_node.tracing import TRACEPARENT, child_traceparent

__all__ = [
    "Origin",
    "call_span_id",
    "chat_span_id",
    "execution_span_digests",
    "execution_span_id",
    "execution_span_ids",
    "origin_of",
    "parse_traceparent",
    "visit_at",
    "visit_half",
    "visit_span_id",
    "visit_span_mix",
]

#: A traceparent is 55 characters; anything much longer is not one.
_LONGEST = 128


class Origin(NamedTuple):
    """Where an execution's span hangs: its trace, the span it is a child of
    (None: it is the trace's root) and whether the trace is sampled."""

    trace_id: int
    parent_id: int | None
    sampled: bool
    #: The execution's traceparent, as recorded (its calls' ids derive from it).
    traceparent: str


def parse_traceparent(value: str | None, root: bool = False) -> Origin | None:
    """The trace context of a ``traceparent`` header (``root``: the span it
    names is nobody's, the trace starts here); None when it is not a valid
    one (a peer's bad header is ignored, never an error)."""
    if value is None or len(value) > _LONGEST:
        return None
    if len(value) == 55 and value[:3] == "00-" and value[35] == "-" == value[52]:
        # The form a node records (version 00, hex): no regex, no int(…, 16).
        try:
            raw = bytes.fromhex(value[3:35] + value[36:52] + value[53:])
        except ValueError:
            raw = b""
        if len(raw) == 25:  # (whitespace in it: shorter; the regex says)
            trace, span = int.from_bytes(raw[:16], "big"), int.from_bytes(raw[16:24], "big")
            if not trace or not span:
                return None
            return Origin(trace, None if root else span, bool(raw[24] & 1), value.lower())
    found = TRACEPARENT.match(value) or TRACEPARENT.match(value.strip().lower())
    if found is None:
        return None
    trace, span = int(found[1], 16), int(found[2], 16)
    if not trace or not span:
        return None
    sampled = bool(int(found[3], 16) & 1)
    return Origin(trace, None if root else span, sampled, found[0])


def origin_of(metadata: str | None, parsed: Mapping[str, Any] | None = None) -> Origin | None:
    """An execution's origin from its metadata (JSON); None when it runs in
    no trace (it was not started by an A2A call). ``parsed``: the metadata
    parsed already (:meth:`~agent_node.store.records.ExecutionRecord.meta`,
    the parse its runner made)."""
    if not metadata or '"traceparent"' not in metadata:
        return None
    found = parsed if parsed is not None else parsed_metadata(metadata)
    value = found.get("traceparent")
    if not isinstance(value, str):
        return None
    return parse_traceparent(value, root=found.get("trace_root") is True)


def _derived(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big") or 1


def execution_span_id(execution_id: str) -> int:
    return _derived("execution", execution_id)


def execution_span_ids(execution_id: str) -> tuple[int, int]:
    """:func:`execution_span_id` and :func:`visit_half` of an execution, in
    one call (its spans need both, once each)."""
    span, half = execution_span_digests(execution_id)
    return int.from_bytes(span, "big"), int.from_bytes(half, "big")


#: The hashes of an execution's two ids, fed their prefix once: a copy
#: costs less than a new hash (OpenSSL looks the algorithm up for each).
_EXECUTION, _VISIT = hashlib.sha256(b"execution:"), hashlib.sha256(b"visit:")
#: An id of 0 is no id: the hash's 8 bytes when they are zero are 1's.
_ZERO, _ONE = bytes(8), (1).to_bytes(8, "big")


def execution_span_digests(execution_id: str) -> tuple[bytes, bytes]:
    """:func:`execution_span_ids` as the 8 bytes each is written as."""
    raw = execution_id.encode()
    span, half = _EXECUTION.copy(), _VISIT.copy()
    span.update(raw)
    half.update(raw)
    span_id, visits = span.digest()[:8], half.digest()[:8]
    return span_id if span_id != _ZERO else _ONE, visits if visits != _ZERO else _ONE


def visit_span_id(key: str) -> int:
    """The span of the visit whose idempotency key is ``key``
    (``<execution>/<node>/<visit>``): :func:`visit_span_mix` of its parts."""
    execution, _, at = key.partition("/")
    return visit_span_mix(visit_half(execution), visit_at(at))


def visit_half(execution_id: str) -> int:
    """The half of its visits' span ids that an execution gives."""
    return _derived("visit", execution_id)


def visit_at(at: str) -> int:
    """The half of a visit's span id that its ``<node>/<visit>`` gives."""
    return _derived("at", at)


def visit_span_mix(execution: int, at: int) -> int:
    """A visit's span id from :func:`visit_half` and :func:`visit_at`: two
    hashes made once — per execution, per
    node of a workflow — so a visit's id costs an XOR, not a hash."""
    return (execution ^ at) or 1


def chat_span_id(key: str) -> int:
    return _derived("chat", key)


def call_span_id(traceparent: str, key: str) -> int:
    """The span id the visit's outgoing calls carry in their ``traceparent``."""
    return int(child_traceparent(traceparent, key).split("-")[2], 16)
