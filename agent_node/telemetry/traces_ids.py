"""The ids of the spans a node builds from its commits: derived, never drawn.

A span built from the event log must have the same id whichever process
builds it and however often the work behind it was retried, so that the
spans emitted earlier — by a peer, or by this node before a crash — find
their parent:

* an execution's span: from its id (``execution:<id>``);
* a node visit's: from its idempotency key (``visit:<execution>/<node>/<visit>``);
* the model call of a model or eval visit: ``chat:<key>``;
* a call that leaves the node (a delegation, an HTTP or a tool request): the
  span id its ``traceparent`` carries —
  :func:`agent_node.tracing.child_traceparent` of the execution's trace
  context and the visit's key — so the peer's spans hang under it.

An id is the first 64 bits of a SHA-256. The trace id and the parent of an
execution's span come from its ``metadata.traceparent``; an execution whose
trace the node made up (``metadata.trace_root``) is its trace's root.
This module imports nothing of OpenTelemetry: its ids are plain integers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from agent_node.tracing import child_traceparent, valid_traceparent

__all__ = [
    "Origin",
    "call_span_id",
    "chat_span_id",
    "execution_span_id",
    "origin_of",
    "parse_traceparent",
    "visit_span_id",
]

#: A traceparent is 55 characters; anything much longer is not one.
_LONGEST = 128


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an execution's span hangs: its trace, the span it is a child of
    (None: it is the trace's root) and whether the trace is sampled."""

    trace_id: int
    parent_id: int | None
    sampled: bool
    #: The execution's traceparent, as recorded (its calls' ids derive from it).
    traceparent: str


def parse_traceparent(value: str | None) -> Origin | None:
    """The trace context of a ``traceparent`` header; None when it is not a
    valid one (a peer's bad header is ignored, never an error)."""
    if value is None or len(value) > _LONGEST:
        return None
    valid = valid_traceparent(value)
    if valid is None:
        return None
    _, trace, span, flags = valid.split("-")
    return Origin(int(trace, 16), int(span, 16), bool(int(flags, 16) & 1), valid)


def origin_of(metadata: str | None) -> Origin | None:
    """An execution's origin from its metadata (JSON); None when it runs in
    no trace (it was not started by an A2A call)."""
    if not metadata or '"traceparent"' not in metadata:
        return None
    try:
        found = json.loads(metadata)
    except ValueError:
        return None
    value = found.get("traceparent") if isinstance(found, dict) else None
    origin = parse_traceparent(value) if isinstance(value, str) else None
    if origin is None:
        return None
    if found.get("trace_root") is True:
        return Origin(origin.trace_id, None, origin.sampled, origin.traceparent)
    return origin


def _derived(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big") or 1


def execution_span_id(execution_id: str) -> int:
    return _derived("execution", execution_id)


def visit_span_id(key: str) -> int:
    """The span of the visit whose idempotency key is ``key``."""
    return _derived("visit", key)


def chat_span_id(key: str) -> int:
    return _derived("chat", key)


def call_span_id(traceparent: str, key: str) -> int:
    """The span id the visit's outgoing calls carry in their ``traceparent``."""
    return int(child_traceparent(traceparent, key).split("-")[2], 16)
