"""The store's own id: what tells that two processes serve one store.

A random 128-bit id kept in the store itself (the row ``store_id`` of
``schema_info``), written by the first process that asks for it and read
by every other. Only a process that reads the store (or someone who was
told it) can name it, so a viewer of several nodes (``agent-node ui``)
may take two nodes that name one id as serving one store. A digest of the
store's URL (what it was before) could be worked out by anyone who knew
the host name and the file's path: a hostile peer named it, and the UI
sent it the operator's actions on the node's executions.

It is a row, not a schema change: older releases read only the row
``version``. Two processes asking at once both insert and keep the one
that was first (``ON CONFLICT DO NOTHING``, then read back). A copy of the
store (a backup restored) keeps its id: its executions are the same.
"""

from __future__ import annotations

import secrets

__all__ = ["READ_STORE_ID", "TAKE_STORE_ID_PG", "TAKE_STORE_ID_SQLITE", "new_store_id"]

READ_STORE_ID = "SELECT value FROM schema_info WHERE key = 'store_id'"
TAKE_STORE_ID_SQLITE = (
    "INSERT INTO schema_info (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING"
)
TAKE_STORE_ID_PG = (
    "INSERT INTO schema_info (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING"
)


def new_store_id() -> str:
    """A new id: 128 random bits, in hex."""
    return secrets.token_hex(16)
