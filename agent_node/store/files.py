"""The SQLite store's file on disk: who may create it, and with which mode.

A command that only reads (``executions``, ``inspect``, ``signal``, …) must
not create a store: a typo in ``--store`` would show an empty table instead
of the mistake. Such a command opens its store with ``create=False`` and a
missing file is a :class:`MissingStore` naming the path, with the closest
existing file when there is one ("did you mean …?").

The file holds push tokens and the credentials of push configs, so a new one
is created readable by its owner only (0600), like a key; SQLite gives the
``-wal`` and ``-shm`` files it creates the mode of the database file. An
existing file keeps its mode: whoever set it meant it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from urllib.parse import urlsplit

from agent_node.errors import ConfigError

__all__ = ["MissingStore", "create_private", "require_file"]

#: Files beside a database that are not stores of their own (``.attached``:
#: :mod:`.attached`).
_COMPANIONS = ("-wal", "-shm", "-journal", ".attached")


class MissingStore(ConfigError):
    """A command that only reads was pointed at a store that does not exist."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


def require_file(url: str, path: Path) -> None:
    """Raise :class:`MissingStore` unless the SQLite file of ``url`` exists."""
    if path.is_file():
        return
    where = path.absolute()
    close = _closest(path)
    if close is not None:
        message = f"no store at {where}; did you mean {_with_path(url, close)}?"
    elif not path.parent.is_dir():
        message = f"no store at {where}: its directory does not exist"
    else:
        message = f"no store at {where}: nothing has run with this store yet"
    raise MissingStore(url, message)


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (and its directory) unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _closest(path: Path) -> Path | None:
    folder = path.parent
    if not folder.is_dir():
        return None
    names = [
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and not entry.name.endswith(_COMPANIONS)
    ]
    match = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return folder / match[0] if match else None


def _with_path(url: str, path: Path) -> str:
    query = urlsplit(url).query
    return f"sqlite:///{path}" + (f"?{query}" if query else "")
