"""A background loop's repeated failures, logged without flooding.

A node's loops (the delegation watchdog, the push sender) try again when
their store cannot be read. While the database is down that is every
second or so, and logging each with its traceback filled a log with 184 KB
in 30 s on an idle node. :class:`Failures` logs the first failure with its
traceback (none for the store out of reach, or a store error, which says
what failed), then one line a minute while it goes on, and one when the loop
works again; a failure unlike those before it in the run is logged once
too, with the count so far (a walk found the cause of a stuck claim loop
hidden behind the first error of its run); and it spaces the tries out,
doubling the pause up to a ceiling, so a database that comes back is not
met by every loop at once.
"""

from __future__ import annotations

import logging
import time

from agent_node.errors import StoreError
from agent_node.store.outage import is_outage

__all__ = ["Failures"]

#: Distinct failures of one run logged at most (a message holding an id or
#: a time is new each time).
DISTINCT = 16


class Failures:
    """The failures of one loop, ``what`` (``"push sender"``)."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        first: float,
        most: float = 30.0,
        every: float = 60.0,
    ) -> None:
        self.log, self.what = log, what
        self.first, self.most, self.every = first, most, every
        #: Failures in a row, and when the last line about them was logged.
        self.count = 0
        self._said = 0.0
        self._since = 0.0
        #: The failures of this run logged already, by type and message.
        self._seen: set[str] = set()

    def failed(self, exc: BaseException) -> float:
        """Log ``exc`` as its turn says; how long to wait before the next try."""
        now = time.monotonic()
        self.count += 1
        kind = f"{type(exc).__name__}: {exc}"
        # An outage, or a store error (it says what failed): no traceback.
        told = isinstance(exc, StoreError) or is_outage(exc)
        if self.count == 1:
            self._since = self._said = now
            self._seen = {kind}
            self.log.error("%s: %s; trying again", self.what, exc, exc_info=None if told else exc)
        elif kind not in self._seen and len(self._seen) < DISTINCT:
            self._seen.add(kind)
            self._said = now
            self.log.error(
                "%s: now failing otherwise (%d failures in %.0f s): %s; trying again",
                *(self.what, self.count, now - self._since, exc),
                exc_info=None if told else exc,
            )
        elif now - self._said >= self.every:
            self._said = now
            self.log.warning(
                "%s: still failing (%d times in %.0f s): %s",
                self.what,
                self.count,
                now - self._since,
                exc,
            )
        return float(min(self.most, self.first * 2 ** (self.count - 1)))

    def worked(self) -> None:
        """The loop did its work: say so if it had been failing."""
        if self.count:
            self.log.warning(
                "%s: works again after %d failures in %.0f s",
                self.what,
                self.count,
                time.monotonic() - self._since,
            )
            self.count = 0
