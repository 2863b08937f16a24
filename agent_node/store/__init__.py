"""Persistence: the :class:`Store` protocol and its three implementations.

``store_from_url`` picks one by URL:

* ``memory://`` — in-process, nothing durable, fastest;
* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``
  (``?synchronous=full`` to survive power loss, default ``normal``;
  ``?cache_kib=N`` for the page cache, default 256; ``?wal_limit_mib=N``:
  the size its write-ahead log is truncated to when it grew past it, default 64);
* ``postgresql://user@host:port/db`` (``postgresql+asyncpg://`` accepted).

The SQL implementations are imported only when their URL is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agent_node.errors import ConfigError
from agent_node.store.base import Plan, Store
from agent_node.store.records import (
    ACTIVE,
    TERMINAL,
    Claim,
    EventRecord,
    ExecutionRecord,
    ExecutionStatus,
    WaitRecord,
    WorkItem,
)
from agent_node.store.txn import Fence, Txn

__all__ = [
    "ACTIVE",
    "DEFAULT_STORE_URL",
    "TERMINAL",
    "Claim",
    "EventRecord",
    "ExecutionRecord",
    "ExecutionStatus",
    "Fence",
    "Plan",
    "Store",
    "Txn",
    "WaitRecord",
    "WorkItem",
    "default_store_url",
    "store_from_url",
]

DEFAULT_STORE_URL = "sqlite:///.agent-node/agent-node.db"


def default_store_url() -> str:
    """``$AGENT_NODE_STORE``, else SQLite under ``.agent-node/`` in the working directory."""
    return os.environ.get("AGENT_NODE_STORE") or DEFAULT_STORE_URL


def store_from_url(url: str, *, create: bool = True, force_upgrade: bool = False) -> Store:
    """A (not yet opened) store for ``url``; raises :class:`ConfigError` on a bad URL.

    ``create=False`` is for commands that only read: opening a SQLite file or
    a PostgreSQL database that holds no store then raises
    :class:`~agent_node.store.files.MissingStore` instead of creating one.
    Opening a store of an older schema upgrades it, unless other processes
    have it open (:class:`~agent_node.errors.StoreInUse`,
    :mod:`.attached`); ``force_upgrade`` upgrades it under them.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        from agent_node.store.memory import MemoryStore

        return MemoryStore(url)
    if scheme == "sqlite":
        return _sqlite(url, create, force_upgrade)
    if scheme in {"postgresql", "postgres", "postgresql+asyncpg"}:
        from agent_node.store.postgres import PostgresStore

        dsn = "postgresql://" + url.split("://", 1)[1]
        return PostgresStore(url, dsn, create=create, force_upgrade=force_upgrade)
    raise ConfigError(
        f"unsupported store URL {url!r}: use memory://, sqlite:///path.db or postgresql://…"
    )


def _sqlite(url: str, create: bool, force_upgrade: bool) -> Store:
    from agent_node.store.sqlite import SqliteStore

    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigError(f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db")
    raw = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        raise ConfigError(f"bad SQLite URL {url!r}: no file path")
    options = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous", "cache_kib", "wal_limit_mib"}
    if unknown:
        raise ConfigError(f"unknown SQLite URL option(s) {sorted(unknown)} in {url!r}")
    cache = options.get("cache_kib", "256")
    if not (cache.isascii() and cache.isdigit()) or int(cache) < 64:
        raise ConfigError(f"cache_kib must be a whole number of KiB, at least 64, not {cache!r}")
    wal = options.get("wal_limit_mib", "64")
    if not (wal.isascii() and wal.isdigit()) or int(wal) < 1:
        raise ConfigError(f"wal_limit_mib must be a whole number of MiB, at least 1, not {wal!r}")
    return SqliteStore(
        url,
        Path(raw),
        synchronous=options.get("synchronous", "normal"),
        cache_kib=int(cache),
        wal_limit=int(wal) * 1024 * 1024,
        create=create,
        force_upgrade=force_upgrade,
    )
