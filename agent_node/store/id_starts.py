"""A start of an execution's id as a range of ids, for listings by it
(:mod:`.listing`; the operator API's search). Ids compare in code point
order: UTF-8's bytes, SQLite's BINARY and PostgreSQL's "C" — not the
database's collation, where a start of ids need not be one range."""

from __future__ import annotations

from typing import Any

__all__ = ["BY_ID", "PG_ID", "SORTED", "id_key", "id_range"]

#: How many executions whose id starts alike are read on the ids' index and
#: sorted, at most; past that the newest are walked. (The ids of one moment
#: start alike, so a start of ids matches ids of one time, which may be a
#: month ago: a walk from the newest would pass every execution since.)
SORTED = 20_000
#: SQLite's index of the primary key (the ids, in code point order).
BY_ID = "sqlite_autoindex_executions_1"
#: PostgreSQL's ids in code point order (``ix_executions_id``, :mod:`.schema`):
#: the key's own order is the database's collation, where a start of an id
#: need not be one range (``en_US`` passes over hyphens).
PG_ID = 'id COLLATE "C"'


def id_range(prefix: str, key: str) -> tuple[str, list[Any]]:
    """The ids that start with ``prefix``: from it, up to the first string
    past every string that starts with it (in code point order: UTF-8's
    bytes, SQLite's BINARY and PostgreSQL's "C")."""
    end = prefix.rstrip("\U0010ffff")
    if not end:
        return f"{key} >= ?", [prefix]
    after = ord(end[-1]) + 1
    after = 0xE000 if 0xD800 <= after <= 0xDFFF else after  # no surrogates in UTF-8
    return f"{key} >= ? AND {key} < ?", [prefix, end[:-1] + chr(after)]


def id_key(sqlite: bool, driver: tuple[str, str, list[Any]] | None) -> str:
    """How a listing compares ids: on PostgreSQL in code point order (its
    index of them); on SQLite by the primary key's index only where the
    listing reads that index (``+id`` is the id, but on no index: else
    SQLite may read every id of a short prefix, a million, and sort them)."""
    if not sqlite:
        return PG_ID
    return "id" if driver is not None and driver[0] == BY_ID else "+id"
