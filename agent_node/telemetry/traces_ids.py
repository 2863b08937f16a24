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

An execution's span id and its half of its visits' are the two 64-bit
halves of one BLAKE2b digest of its id (:func:`execution_span_ids`: one hash
per execution, hashed without OpenSSL, whose SHA-256 cost an execution as
much as its span; before, each was the first 64 bits of its own SHA-256,
so a trace begun before that change and ended after it has two ids for
its execution). The other ids are the first 64 bits of a SHA-256 of their
key (a visit's node half: hashed once per node). The trace id and the
parent of an execution's span come from its ``metadata.traceparent``; an
execution whose trace the node made up (``metadata.trace_root``) is its
trace's root. This module imports nothing of OpenTelemetry.
"""

from __future__ import annotations

import hashlib
from binascii import unhexlify
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
    (None: it is the trace's root) and whether the trace is sampled. Ids as
    the spans write them: bytes, big-endian."""

    #: The trace id (16 bytes).
    trace: bytes
    #: The parent span's id (8 bytes); None for a trace's root.
    parent: bytes | None
    sampled: bool
    #: The execution's traceparent, as recorded (its calls' ids derive from it).
    traceparent: str

    @property
    def trace_id(self) -> int:
        return int.from_bytes(self.trace, "big")

    @property
    def parent_id(self) -> int | None:
        return None if self.parent is None else int.from_bytes(self.parent, "big")


#: Made as :meth:`Origin._make` makes one: the NamedTuple's ``__new__`` is a
#: Python function, its call half of what a traceparent's parse costs.
_origin = tuple.__new__
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def parse_traceparent(value: str | None, root: bool = False) -> Origin | None:
    """The trace context of a ``traceparent`` header (``root``: the span it
    names is nobody's, the trace starts here); None when it is not a valid
    one (a peer's bad header is ignored, never an error)."""
    if value is None or len(value) > _LONGEST:
        return None
    if len(value) == 55 and value[2] == value[35] == value[52] == "-":
        # The form a node records (hex, dashes where they belong): no regex,
        # no slices, no int(…, 16). Version, trace id, span id, flags.
        try:
            raw = unhexlify(value.replace("-", ""))
        except ValueError:  # whitespace, or not hex: the regex says
            raw = b""
        if len(raw) == 26 and raw[0] == 0:
            trace, span = raw[1:17], raw[17:25]
            if trace == _ZERO_TRACE or span == _ZERO_SPAN:
                return None
            found = (trace, None if root else span, raw[25] & 1 == 1, value.lower())
            return _origin(Origin, found)
    match = TRACEPARENT.match(value) or TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    trace, span = bytes.fromhex(match[1]), bytes.fromhex(match[2])
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    sampled = int(match[3], 16) & 1 == 1
    return Origin(trace, None if root else span, sampled, match[0])


def origin_of(metadata: str | None, parsed: Mapping[str, Any] | None = None) -> Origin | None:
    """An execution's origin from its metadata (JSON); None when it runs in
    no trace (it was not started by an A2A call). ``parsed``: the metadata
    parsed already (:meth:`~agent_node.store.records.ExecutionRecord.meta`,
    the parse its runner made)."""
    if parsed is None:
        if not metadata or '"traceparent"' not in metadata:
            return None
        parsed = parsed_metadata(metadata)
    value = parsed.get("traceparent")
    if not isinstance(value, str):
        return None
    return parse_traceparent(value, parsed.get("trace_root") is True)


def _derived(kind: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big") or 1


def execution_span_id(execution_id: str) -> int:
    return execution_span_ids(execution_id)[0]


def execution_span_ids(execution_id: str) -> tuple[int, int]:
    """:func:`execution_span_id` and :func:`visit_half` of an execution: the
    two halves of one hash."""
    span, half = execution_span_digests(execution_id)
    return int.from_bytes(span, "big"), int.from_bytes(half, "big")


#: An execution's hash: BLAKE2b of its id, 16 bytes, personalized (no hash
#: of another key of the same text gives the same ids); a copy of it costs
#: less than a new one.
_EXECUTION = hashlib.blake2b(digest_size=16, person=b"execution")
#: An id of 0 is no id: the hash's 8 bytes when they are zero are 1's.
_ZERO, _ONE = bytes(8), (1).to_bytes(8, "big")


def execution_span_digests(execution_id: str) -> tuple[bytes, bytes]:
    """:func:`execution_span_ids` as the 8 bytes each is written as."""
    found = _EXECUTION.copy()
    found.update(execution_id.encode())
    both = found.digest()
    span_id, visits = both[:8], both[8:]
    return span_id if span_id != _ZERO else _ONE, visits if visits != _ZERO else _ONE


def visit_span_id(key: str) -> int:
    """The span of the visit whose idempotency key is ``key``
    (``<execution>/<node>/<visit>``): :func:`visit_span_mix` of its parts."""
    execution, _, at = key.partition("/")
    return visit_span_mix(visit_half(execution), visit_at(at))


def visit_half(execution_id: str) -> int:
    """The half of its visits' span ids that an execution gives."""
    return execution_span_ids(execution_id)[1]


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
