"""What a caller is told of a request this node failed, and what is logged,
the same on every binding (JSON-RPC, REST, gRPC).

* The store out of reach (:func:`~agent_node.store.outage.is_outage`: its
  database down or restarting): :class:`Unavailable` (-32033, HTTP
  503, gRPC UNAVAILABLE), worth asking again; one line logged for the
  first such request, then one a minute with how many were told so (an
  operator's drill logged 2,164 lines in a 30 s outage, one a request).
* The store failing otherwise (:class:`~agent_node.errors.StoreError`, which
  says what failed): an internal error, telling a full disk apart; one line.
* Anything else: an internal error that says nothing of our internals, its
  traceback logged.
"""

from __future__ import annotations

import logging
import time

from agent_node.a2a.protocol.errors import A2AError, InternalError, Unavailable
from agent_node.errors import StoreError
from agent_node.store.outage import is_outage

__all__ = ["failed", "log_outage"]


def failed(exc: Exception, log: logging.Logger, what: str) -> A2AError:
    """``exc``, which ``what`` (``"A2A REST POST /a2a/message:send"``)
    raised, logged, as its caller is told it."""
    if isinstance(exc, A2AError):
        return exc
    if is_outage(exc):
        log_outage(log, what, exc)
        return Unavailable("the node's store cannot be reached now; ask again in a moment")
    if isinstance(exc, StoreError):  # says what failed: no traceback needed
        log.error("%s failed: %s", what, exc)
        return InternalError.of(exc)
    log.error("%s failed", what, exc_info=exc)
    return InternalError("internal error")


class _Outages:
    """Requests told the store is out of reach, logged without flooding."""

    #: Seconds between two lines while requests keep being told so.
    EVERY = 60.0

    def __init__(self) -> None:
        self._said = -self.EVERY
        self._since_said = 0

    def told(self, log: logging.Logger, what: str, exc: Exception) -> None:
        now = time.monotonic()
        self._since_said += 1
        if now - self._said < self.EVERY:
            return
        more = self._since_said - 1
        also = f" ({more} more request(s) told so since the last line)" if more else ""
        log.warning("%s: the store cannot be reached: %s%s", what, exc, also)
        self._said, self._since_said = now, 0


_OUTAGES = _Outages()


def log_outage(log: logging.Logger, what: str, exc: Exception) -> None:
    """Log that ``what`` was told the store is out of reach, without flooding."""
    _OUTAGES.told(log, what, exc)
