"""What each caller has in flight: requests and event streams, each under its own cap.

A request is counted from the moment the node's
:class:`~agent_node.a2a.server.app.Guard` admits it (before its body is read)
until its response is sent, at most ``limits.max_concurrent_per_caller`` of
one identity at once: one more is refused with -32032 and ``Retry-After``,
which comes true because requests end.

An event stream (SendStreamingMessage, SubscribeToTask, over JSON-RPC,
HTTP+JSON or gRPC; the operator API's ``/ops/stream`` and
``/ops/executions/{id}/live``) lives as long as what it follows, which may
be for ever. Counted among the requests, a caller's open streams would
refuse every other call of its own — the CancelTask or GetTask of the very
tasks it follows, an operator's own API — with a ``Retry-After`` that
cannot come true. So a binding, once it knows that a request opens a
stream and before the handler starts anything, moves it from the caller's
requests to its streams (:func:`open_stream`), at most
``limits.max_streams_per_caller``: one more is refused
(:class:`TooManyStreams`, -32032, no ``Retry-After``) saying that closing
one makes room.

A blocking SendMessage (without ``returnImmediately``; 0.3: ``blocking``
not false) follows its task the same way: it is answered when the task is
terminal or interrupted, after a timer, a peer or a person took as long as
they take. So it counts as a stream too (:func:`follows_its_task`), moved
before the handler makes a task, like a stream. Answering it with the task
as it is after a bound would keep it a request, but A2A 1.0 (§3.2.2) says
a blocking send MUST wait until the task is terminal or interrupted, and a
client that sends no configuration (what the SDKs do) is owed exactly
that. Moving it only once its task parks would find the streams full after
the task was made: a refusal then would orphan the task, and keeping it a
request would bring the lockout back. A blocking send over the cap is
refused before any task is made, as a stream is; one that ends at once was
a stream for a moment, which costs nothing.

A client at a cap can send refused requests as fast as it likes: each
caller's refusals are logged once per :data:`LOG_EVERY` seconds, with how
many there were, not one line each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_node.a2a.protocol.errors import TooManyRequests
from agent_node.a2a.protocol.models import SendMessageRequest

__all__ = [
    "IN_FLIGHT",
    "LOG_EVERY",
    "InFlight",
    "Ticket",
    "TooManyStreams",
    "follows_its_task",
    "open_stream",
]

log = logging.getLogger("agent_node.a2a.server.app")

#: The ASGI scope key of an admitted request's :class:`Ticket`.
IN_FLIGHT = "agent_node.in_flight"
#: Seconds between two log lines about one caller's refusals.
LOG_EVERY = 60.0
#: Callers whose refusals are remembered before the quiet ones are forgotten.
_REMEMBERED = 1024


class TooManyStreams(TooManyRequests):
    """The caller has as many event streams open as ``limits.max_streams_per_caller``
    allows; its metadata: ``openStreams`` and ``limit``."""


@dataclass(slots=True)
class Ticket:
    """One admitted request: whose, where it is counted, and as what."""

    caller: str | None
    counter: InFlight
    kind: Literal["request", "stream", "done"] = "request"


@dataclass(slots=True)
class _Said:
    """When a caller's refusals were last logged, and how many came since."""

    at: float
    unsaid: int = 0


@dataclass
class InFlight:
    """Each caller's requests and streams in flight (see the module doc); a
    cap of 0 is no cap."""

    max_requests: int = 0
    max_streams: int = 0
    clock: Callable[[], float] = time.monotonic
    _requests: dict[str | None, int] = field(default_factory=dict, repr=False)
    _streams: dict[str | None, int] = field(default_factory=dict, repr=False)
    _said: dict[str | None, _Said] = field(default_factory=dict, repr=False)

    def full(self, caller: str | None) -> TooManyRequests | None:
        """The refusal of one more request of ``caller``, if it is at the cap."""
        cap = self.max_requests
        if not cap or self._requests.get(caller, 0) < cap:
            return None
        self._refused(caller, f"{cap} requests in flight (limits.max_concurrent_per_caller)")
        return TooManyRequests(f"{cap} requests in flight already; retry when one is done")

    def enter(self, caller: str | None) -> Ticket:
        _add(self._requests, caller, 1)
        return Ticket(caller, self)

    def to_stream(self, ticket: Ticket) -> None:
        """Count ``ticket``'s request as an open stream from now on; raises
        :class:`TooManyStreams` (the request still counted) at the cap."""
        if ticket.kind != "request":
            return
        caller, cap = ticket.caller, self.max_streams
        if cap and (open_ := self._streams.get(caller, 0)) >= cap:
            self._refused(caller, f"{open_} event streams open (limits.max_streams_per_caller)")
            who = "you have" if caller is None else f"{caller[:100]} has"
            raise TooManyStreams(
                f"{who} {open_} event streams open, as many as this node allows one caller;"
                " closing one makes room (a blocking SendMessage counts as one)",
                metadata={"openStreams": str(open_), "limit": str(cap)},
            )
        _add(self._requests, caller, -1)
        _add(self._streams, caller, 1)
        ticket.kind = "stream"

    def leave(self, ticket: Ticket) -> None:
        if ticket.kind != "done":
            _add(self._requests if ticket.kind == "request" else self._streams, ticket.caller, -1)
            ticket.kind = "done"

    def counts(self, caller: str | None) -> tuple[int, int]:
        """``caller``'s requests and streams in flight."""
        return self._requests.get(caller, 0), self._streams.get(caller, 0)

    def _refused(self, caller: str | None, why: str) -> None:
        now = self.clock()
        said = self._said.get(caller)
        if said is not None and now - said.at < LOG_EVERY:
            said.unsaid += 1
            return
        since = f" ({said.unsaid} more refused since the last line)" if said and said.unsaid else ""
        log.warning("refused %s: %s%s", caller or "anonymous", why, since)
        self._said[caller] = _Said(now)
        if len(self._said) > _REMEMBERED:
            self._said = {k: v for k, v in self._said.items() if now - v.at < LOG_EVERY}


def open_stream(scope: Any) -> None:
    """Count the request of ``scope`` as an event stream (see the module
    doc): a binding calls it before the handler opens one; raises
    :class:`TooManyStreams` at the caller's cap. Nothing without a guard."""
    ticket = scope.get(IN_FLIGHT)
    if isinstance(ticket, Ticket):
        ticket.counter.to_stream(ticket)


def follows_its_task(stream: bool, request: object) -> bool:
    """Whether a request follows its task for as long as the task takes (see
    the module doc): an event stream (``stream``, the operation's), or a
    SendMessage that blocks until its task is terminal or interrupted."""
    if stream:
        return True
    if not isinstance(request, SendMessageRequest):
        return False
    config = request.configuration
    return not (config and config.return_immediately)


def _add(counts: dict[str | None, int], caller: str | None, step: int) -> None:
    left = counts.get(caller, 0) + step
    if left > 0:
        counts[caller] = left
    else:
        counts.pop(caller, None)
