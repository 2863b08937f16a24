"""Which store a node serves: one identity for every process that shares it.

Executions belong to a store, not to a node: the replicas of a node (one
configuration, several processes on one database) and different nodes
given one database all run, and list, every execution of it. So the
operator API names its store (``store`` on ``/ops/node``, each page of
``/ops/executions`` and ``/ops/inbox``, the ``hello`` of ``/ops/stream``),
and a viewer of several nodes (``agent-node ui``) lists a shared store's
executions once.

The identity is a digest of where the store's data lives, as its URL says,
without what does not change that (credentials, pool and cache options):

* PostgreSQL: the server — its host and port, a loopback address or a Unix
  socket standing for this machine (its name goes in) — and the database
  (by default the user's name, as libpq has it);
* SQLite: the file, resolved to its absolute path on this machine;
* memory: the store object of this process (never shared).

It is not the card's name: two different nodes on one database share its
executions too. And it is not an id kept in the store, which would need a
row written by every store and its upgrades; a digest of the URL needs
nothing. Its limit: one server reached under two names (a DNS name and its
address) reads as two stores, whose executions are then listed once per
name.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from agent_node.store import Store

__all__ = ["store_identity"]

_LOOPBACK = frozenset({"", "localhost", "::1", "[::1]", "ip6-localhost"})
#: Tells this process's memory stores from another's (ids of objects repeat).
_PROCESS = uuid.uuid4().hex


def store_identity(store: Store) -> str:
    """``kind:digest``, the same for every process serving ``store``'s data."""
    scheme = store.url.split("://", 1)[0].lower()
    if scheme == "sqlite" or scheme.startswith("postgres"):
        return _identity_of_url(store.url)
    return f"memory:{_digest([_PROCESS, id(store)])}"


@functools.lru_cache(maxsize=16)
def _identity_of_url(url: str) -> str:
    if url.lower().startswith("sqlite"):
        return f"sqlite:{_digest(_sqlite_file(url))}"
    return f"postgresql:{_digest(_pg_database(url))}"


def _sqlite_file(url: str) -> list[str]:
    raw = urlsplit(url).path
    path = raw[1:] if raw.startswith("/") else raw
    return [socket.gethostname(), str(Path(unquote(path)).resolve())]


def _pg_database(url: str) -> list[str]:
    """Server and database named by a libpq-style URL (hosts may be a list)."""
    parts = urlsplit(url)
    options = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    credentials, _, hosts = parts.netloc.rpartition("@")
    user = options.get("user") or unquote(credentials.partition(":")[0]) or getpass.getuser()
    hosts = options.get("host") or hosts
    port = options.get("port")
    servers = []
    for host_port in hosts.split(","):
        host, given = _host_port(unquote(host_port))
        local = host.lower() in _LOOPBACK or host.startswith(("127.", "/"))
        name = f"{socket.gethostname()}/{host if host.startswith('/') else 'loopback'}"
        servers.append(f"{name if local else host.lower()}:{port or given or '5432'}")
    database = options.get("dbname") or options.get("database") or unquote(parts.path[1:])
    return [*sorted(servers), database or user]


def _host_port(spec: str) -> tuple[str, str]:
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        return host, rest.removeprefix(":")
    if spec.startswith("/") or spec.count(":") != 1:
        return spec, ""
    host, _, port = spec.partition(":")
    return host, port


def _digest(parts: Sequence[object]) -> str:
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:24]
