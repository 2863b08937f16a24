"""Who else has a store open: the processes an upgrade of its schema would
pull the tables from under.

An upgrade is one way, and a process of an older release that goes on
serving an upgraded store writes what the new schema does not read (or
fails on every write). So opening a store of an older schema version
upgrades it only when no other process has it open; otherwise it refuses
(:class:`~agent_node.errors.StoreInUse`), naming them and how to proceed,
unless told to upgrade anyway (``agent-node upgrade --force``). Processes of
this release (or a newer one) that open the store meanwhile do not count:
they would upgrade it themselves.

How a process is seen:

* SQLite: every connection in WAL mode holds a POSIX read lock on the
  ``-shm`` file (and on the database file) while open; Linux lists them,
  with their process ids, in ``/proc/locks``. Every process of this
  release also holds a read lock on one byte of a side file
  (``<db>.attached``), at the offset of the schema version it speaks
  (:class:`Marker`): a holder without one is an older agent-node (or
  another program), which goes on writing after an upgrade.
* PostgreSQL: our connections carry ``application_name``
  ``agent-node/<schema version> <pid>@<host>`` (:func:`application_name`),
  seen in ``pg_stat_activity``; an older agent-node's connections have no
  such name, but every one keeps a connection that ``LISTEN``\\ s on our
  channel, which is its last query there.

A process that watches its schema (this release on: one that names its
version) stops by itself once a newer agent-node upgraded its store
(:mod:`agent_node.engine.schema_guard`); an older one must be stopped first.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agent_node.errors import StoreInUse
from agent_node.store.schema import SCHEMA_VERSION

__all__ = [
    "Marker",
    "application_name",
    "named",
    "pg_attached",
    "refusal",
    "sqlite_attached",
]

log = logging.getLogger(__name__)

#: PostgreSQL keeps the first 63 bytes of an application_name.
_NAME_MAX = 63
_NAMED = re.compile(r"agent-node/(\d+)\b")
#: Sessions of other agent-node processes on this database: named ones, and
#: an older release's, found by the LISTEN it issued last.
_PG_SESSIONS = (
    "SELECT application_name, client_addr::text, backend_start FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND application_name <> $1"
    " AND (application_name LIKE 'agent-node/%' OR query LIKE 'LISTEN %agent\\_node%')"
    " ORDER BY backend_start"
)
#: The descriptor and the number of stores open of each marked file, by (device, inode).
_HELD: dict[tuple[int, int], list[int]] = {}
_OLDER = "an agent-node that does not watch its store's schema: stop it first"
_WATCHING = "stops by itself once the store is upgraded"


def application_name() -> str:
    """This process's name on its PostgreSQL connections."""
    name = f"agent-node/{SCHEMA_VERSION} {os.getpid()}@{socket.gethostname()}"
    return name.encode()[:_NAME_MAX].decode(errors="ignore")


def named(dsn: str) -> str:
    """``dsn`` with this process's :func:`application_name` (in place of any
    given: an upgrade must see which processes are ours, and of which schema)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", application_name()))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def pg_attached(conn: Any) -> list[str]:
    """The other processes on ``conn``'s database that an upgrade would
    break, described (none of this release or newer, none of this process)."""
    found: list[str] = []
    for name, address, since in await conn.fetch(_PG_SESSIONS, application_name()):
        where = f"from {address or 'a local socket'}, connected {since:%Y-%m-%d %H:%M:%S %Z}"
        speaks = _NAMED.match(name or "")
        if speaks is None:
            found.append(f"a session LISTENing for agent-node ({where}): {_OLDER}")
        elif int(speaks.group(1)) < SCHEMA_VERSION:
            found.append(f"{name} ({where}): {_WATCHING}")
    return sorted(set(found), key=found.index)


class Marker:
    """This process's read lock on the byte of its schema version in the side
    file ``<db>.attached``, held while a store of the file is open.

    POSIX locks belong to a process, and closing any descriptor of a file
    lets go of all of them: the file is opened once per process, whatever
    the number of its stores open, and closed with the last.
    """

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".attached")
        self._key: tuple[int, int] | None = None

    def take(self) -> None:
        """Hold the lock (a file that cannot be made, e.g. read-only, is skipped)."""
        import fcntl

        key = _stat_key(self.path)
        if key is not None and key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.debug("cannot mark %s as open here: %s", self.path, exc)
            return
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, SCHEMA_VERSION)
        except OSError as exc:  # no lock of this process on it to lose
            os.close(fd)
            log.debug("cannot mark %s as open here: %s", self.path, exc)
            return
        stat = os.fstat(fd)
        self._key = (stat.st_dev, stat.st_ino)
        _HELD[self._key] = [fd, 1]

    def release(self) -> None:
        """Let go of it (with the last store of the file open here)."""
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        held = _HELD[key]
        held[1] -= 1
        if held[1] == 0:
            del _HELD[key]
            os.close(held[0])


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def sqlite_attached(db: Path) -> list[str]:
    """The other processes that have the SQLite file ``db`` open and that an
    upgrade would break, described; none when it cannot be told (no
    ``/proc/locks``: said once, at WARNING)."""
    try:
        with open("/proc/locks") as listing:
            lines = listing.read().splitlines()
    except OSError:
        log.warning("cannot tell which processes have %s open (no /proc/locks)", db)
        return []
    files = {_file_id(path) for path in (db, db.with_name(db.name + "-shm"))}
    marker = _file_id(Marker(db).path)
    holders: set[int] = set()
    speaks: dict[int, int] = {}
    for pid, file, start in _locks(lines):
        if pid == os.getpid() or pid <= 0:
            continue
        if file in files:
            holders.add(pid)
        elif file == marker:
            speaks[pid] = max(speaks.get(pid, 0), start)
    found = []
    for pid in sorted(holders | set(speaks)):
        version = speaks.get(pid)
        if version is None:
            found.append(f"process {pid} ({_command(pid)}): {_OLDER}")
        elif version < SCHEMA_VERSION:
            found.append(f"process {pid} ({_command(pid)}, schema {version}): {_WATCHING}")
    return found


def _file_id(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino


def _locks(lines: Iterable[str]) -> Iterable[tuple[int, tuple[int, int, int], int]]:
    """``(pid, (major, minor, inode), start)`` of each POSIX lock listed
    (``1: POSIX  ADVISORY  READ 4242 fe:00:2146962 128 128``; a waiter's
    line has ``->`` after its number)."""
    for line in lines:
        fields = [f for f in line.split() if f != "->"]
        if len(fields) < 8 or fields[1] != "POSIX":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            yield int(fields[4]), (int(major, 16), int(minor, 16), int(inode)), int(fields[6])
        except ValueError:
            continue


def _command(pid: int) -> str:
    """The command line of ``pid``, shortened, as ps shows it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        return "its command line unknown"
    text = " ".join(" ".join(w.decode(errors="replace").split()) for w in words if w)
    return text if len(text) <= 120 else text[:119] + "…"


def refusal(url: str, version: int, attached: list[str]) -> StoreInUse:
    """Why the store at ``url`` (schema ``version``) is not upgraded, and how to."""
    return StoreInUse(
        f"the store {url} has schema {version} and this agent-node would upgrade it to"
        f" {SCHEMA_VERSION} (one way: an older agent-node cannot use it after), but other"
        f" processes have it open: {'; '.join(attached)}. Stop them (or drain the replicas),"
        f" back the store up and run `agent-node upgrade --store {url}`; or `agent-node"
        f" upgrade --store {url} --force` to upgrade it under them."
    )
