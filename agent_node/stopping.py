"""SIGINT and SIGTERM ask a uvicorn server to stop: a node's
(:mod:`agent_node.node`) and the web UI's (``agent-node ui``).

uvicorn handles both signals while it serves, then restores the handlers it
found and raises the signal again. Python's own handlers would make that a
KeyboardInterrupt (click's "Aborted!", exit 1) or a death by SIGTERM, half
way through closing; these only ask the stopped server to stop, also
before uvicorn installs its own, so the process goes on to close what it
opened.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(server: Any, on_stop: Callable[[], object] | None = None) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``on_stop`` and set the
    server's ``should_exit``."""

    def stop(*_: object) -> None:
        if on_stop is not None:
            on_stop()
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
