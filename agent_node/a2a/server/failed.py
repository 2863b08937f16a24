"""What a caller is told of a request this node failed, and what is logged,
the same on every binding (JSON-RPC, REST, gRPC).

* The store out of reach (:func:`~agent_node.store.outage.is_outage`: its
  database down or restarting): :class:`Unavailable` (-32033, HTTP
  503, gRPC UNAVAILABLE), worth asking again; one line logged.
* The store failing otherwise (:class:`~agent_node.errors.StoreError`, which
  says what failed): an internal error, telling a full disk apart; one line.
* Anything else: an internal error that says nothing of our internals, its
  traceback logged.
"""

from __future__ import annotations

import logging

from agent_node.a2a.protocol.errors import A2AError, InternalError, Unavailable
from agent_node.errors import StoreError
from agent_node.store.outage import is_outage

__all__ = ["failed"]


def failed(exc: Exception, log: logging.Logger, what: str) -> A2AError:
    """``exc``, which ``what`` (``"A2A REST POST /a2a/message:send"``)
    raised, logged, as its caller is told it."""
    if isinstance(exc, A2AError):
        return exc
    if is_outage(exc):
        log.warning("%s: the store cannot be reached: %s", what, exc)
        return Unavailable("the node's store cannot be reached now; ask again in a moment")
    if isinstance(exc, StoreError):  # says what failed: no traceback needed
        log.error("%s failed: %s", what, exc)
        return InternalError.of(exc)
    log.error("%s failed", what, exc_info=exc)
    return InternalError("internal error")
