"""What a run costs PostgreSQL, measured from outside the store (pg_bench.py).

:class:`ServerCpu` reads the server's CPU time for one database from
``/proc`` (its backends, and the background processes all databases
share); :class:`Statements` counts what asyncpg sends, client-side;
:func:`loadavg` is the machine's load, printed beside every row. Apart
from the parts that use them (:mod:`pg_parts`) because they measure any
run, ours or a peer's, and import nothing of agent-node.
"""

from __future__ import annotations

import collections
import os
from typing import Any


class ServerCpu:
    """CPU seconds the PostgreSQL server spends for ``database`` from now on:
    its backends (told apart by their process title, ``postgres: user
    database host(port) …``) and the server's background processes (WAL
    writer, checkpointer…: shared with other databases, so an upper bound).
    Other databases' backends — another session's tests on the same server —
    are left out. Read from ``/proc``; :meth:`sample` while backends come and
    go (a backend that exits between samples loses its last moments)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._start = self._read()
        self._last = dict(self._start)

    def _read(self) -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        found: dict[int, float] = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
                continue
            if not title.startswith("postgres: "):
                continue  # the postmaster itself
            backend = "(" in title or "[local]" in title
            if backend and f" {self.database} " not in title:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            found[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
        return found

    def sample(self) -> None:
        self._last.update(self._read())

    def seconds(self) -> float:
        self.sample()
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Statements:
    """What asyncpg sends, counted client-side: ``execute`` and ``fetch*``
    are one statement and one round trip each, ``executemany`` one round
    trip and one statement per row; ``BEGIN``/``COMMIT`` are round trips of
    their own, counted apart."""

    def __init__(self) -> None:
        self.by_text: collections.Counter[str] = collections.Counter()
        self.statements = 0
        self.round_trips = 0
        self.begin_commit = 0

    def install(self) -> None:
        from asyncpg.connection import Connection

        for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
            self._wrap(Connection, name)

    def _wrap(self, cls: Any, name: str) -> None:
        original = getattr(cls, name)
        counter = self

        async def counted(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            counter.round_trips += 1
            head = query.split(None, 1)[0].upper() if query.strip() else ""
            if head in ("BEGIN", "COMMIT", "ROLLBACK", "BEGIN;", "COMMIT;"):
                counter.begin_commit += 1
            else:
                rows = len(args[0]) if name == "executemany" and args else 1
                counter.statements += rows
                counter.by_text[" ".join(query.split())[:70]] += rows
            return await original(conn, query, *args, **kwargs)

        setattr(cls, name, counted)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def per_step(self, steps: int) -> dict[str, Any]:
        return {
            "statements_per_step": round(self.statements / steps, 3),
            "round_trips_per_step": round((self.statements_rt() + self.begin_commit) / steps, 3),
            "begin_commit_per_step": round(self.begin_commit / steps, 3),
            "top_statements": dict(self.by_text.most_common(6)),
        }

    def statements_rt(self) -> int:
        return self.round_trips - self.begin_commit
