"""Whether a store's failure is an outage: its database cannot be reached
now (the connection refused or lost, the server starting, shutting down or
out of connections), not a failure of what was asked. A caller told so may
ask again in a moment; nothing of the request was written (the store
commits whole transactions or nothing)."""

from __future__ import annotations

import logging
import sys

__all__ = ["is_outage", "quiet_pool_outages"]


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, is an outage."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, ConnectionError | TimeoutError) or _postgres_outage(found):
            return True
        found = found.__cause__ or found.__context__
    return False


def _postgres_outage(exc: BaseException) -> bool:
    asyncpg = sys.modules.get("asyncpg")  # imported by the PostgreSQL store only
    if asyncpg is None:
        return False
    errors = asyncpg.exceptions
    if isinstance(exc, errors.InterfaceError):
        return "connection is closed" in str(exc)
    if isinstance(exc, errors.InternalClientError):
        # A connection the outage cut mid-statement, taken up again
        # ("cannot switch to state 12; another operation (2) is in progress").
        return "another operation" in str(exc)
    return isinstance(
        exc,
        errors.PostgresConnectionError
        | errors.CannotConnectNowError
        | errors.AdminShutdownError
        | errors.CrashShutdownError
        | errors.TooManyConnectionsError,
    )


class _OutageLines(logging.Filter):
    """asyncpg's pool logs each try to reconnect that fails with its
    traceback (backing off to a minute); for an outage a line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_outage(exc):
            record.msg, record.args = f"{record.getMessage()}: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


_QUIET = _OutageLines()


def quiet_pool_outages() -> None:
    """asyncpg's pool logs an outage in a line, not a traceback (idempotent)."""
    pool_log = logging.getLogger("asyncpg.pool")
    if _QUIET not in pool_log.filters:
        pool_log.addFilter(_QUIET)
