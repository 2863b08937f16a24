"""The log every ``agent-node`` command writes on stderr: one line a record.

As text by default::

    2026-12-07T19:45:00.123+00:00 WARNING agent_node.a2a.server.tasks: refused …

or as JSON objects (:mod:`.logs`, ``serve --log-format json``). A record's
message never spans lines nor moves the terminal: what its arguments bring
(a request's path, a JWT's subject, a peer's error) is shown with its
control characters, bidirectional ones too, escaped
(:func:`~agent_node.printable.printable`) — an unauthenticated caller
could otherwise write a line of its own into the node's log, or show the
rest of one reversed. A traceback follows its line as the block of lines it is.

Light on purpose: every command installs it, and the JSON formatter (which
reads the engine's context) is imported only when asked for.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Literal, TextIO

from agent_node.printable import printable

__all__ = ["LogFormat", "TextFormatter", "use_logs"]

LogFormat = Literal["text", "json"]
#: The levels each format writes from: text for a person (what goes wrong),
#: JSON for a pipeline that indexes everything.
_LEVELS: dict[LogFormat, int] = {"text": logging.WARNING, "json": logging.INFO}
_NOISY = ("httpx", "httpcore", "LiteLLM", "asyncio")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <message>``, the message on one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        return moment.isoformat(timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        return printable(super().formatException(ei), lines=True)

    def formatStack(self, stack_info: str) -> str:
        return printable(super().formatStack(stack_info), lines=True)


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stderr`` as it is when a record comes (a stream a
    test runner swapped in, too), as :data:`logging.lastResort` does."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.setLevel(level)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def use_logs(form: LogFormat = "text") -> Callable[[], None]:
    """Write the process's log records on stderr in ``form`` (text from
    WARNING, JSON from INFO); returns the way back.

    Takes the place of what an earlier call installed: the command line's
    text, when ``serve --log-format json`` asks for JSON.
    """
    root = logging.getLogger()
    replaced = [h for h in root.handlers if isinstance(h, _Stderr)]
    for handler in replaced:
        root.removeHandler(handler)
    level = _LEVELS[form]
    handler = _Stderr(level)
    handler.setFormatter(_json() if form == "json" else TextFormatter())
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, level))
    if form == "json":
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def stop() -> None:
        root.removeHandler(handler)
        for earlier in replaced:
            root.addHandler(earlier)
        root.setLevel(previous)

    return stop


def _json() -> logging.Formatter:
    from agent_node.telemetry.logs import JsonFormatter

    return JsonFormatter()
