"""API keys: a caller presents a key; the node keeps only its hash and the identity it names.

A key is 32 random bytes (``ank_`` and 43 base64url characters), printed
once by ``agent-node keys add NAME`` and never stored: the key file
(``auth.api_keys.file``, written owner-only) holds, per key, its name, the
identity it stands for (the name unless given) and the SHA-256 of the key.
A fast hash is right here: the keys are random, not chosen by people, so
there is nothing to guess that a slow hash would protect.

A presented key is hashed and compared with every stored hash in constant
time (:func:`hmac.compare_digest`, and no early exit), so how long a refusal
takes tells nothing of the stored keys. The file is read again when it
changes (looked at no more than once a second), so ``keys add`` and ``keys
revoke`` take effect on a running node.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent_node.errors import ConfigError

__all__ = ["KEY_PREFIX", "ApiKeys", "StoredKey", "add_key", "new_key", "revoke_key"]

KEY_PREFIX = "ank_"
#: Seconds between looks at the key file's modification time.
_RECHECK = 1.0


@dataclass(frozen=True)
class StoredKey:
    name: str
    identity: str
    sha256: str
    created: float


def new_key() -> str:
    """A fresh key (shown once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The keys of ``path`` (a missing file holds none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: tuple[StoredKey, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._reload()

    def identity_of(self, presented: str) -> str | None:
        """The identity ``presented`` stands for; None for a key not held."""
        self._maybe_reload()
        wanted = digest(presented).encode("ascii")
        found: str | None = None
        for key in self._keys:  # every one, found or not: constant time in the keys
            if hmac.compare_digest(wanted, key.sha256.encode("ascii")) and found is None:
                found = key.identity
        return found

    def names(self) -> list[StoredKey]:
        self._maybe_reload()
        return list(self._keys)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked >= _RECHECK:
            self._checked = now
            self._reload()

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = (), None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._keys = tuple(read_keys(self.path))
        self._stamp = stamp


def read_keys(path: Path) -> list[StoredKey]:
    """The keys of the file at ``path`` (none when it does not exist)."""
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the API key file {path}: {exc}") from None
    entries = raw.get("keys") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"the API key file {path} has no list of keys")
    keys = []
    for entry in entries:
        try:
            keys.append(
                StoredKey(
                    str(entry["name"]),
                    str(entry["identity"]),
                    str(entry["sha256"]),
                    float(entry.get("created", 0)),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"the API key file {path} has a malformed entry") from None
    return keys


def add_key(path: Path, name: str, identity: str | None = None) -> str:
    """Add a key named ``name`` for ``identity`` (default: the name); the new
    key, which is not stored anywhere."""
    keys = read_keys(path)
    if any(key.name == name for key in keys):
        raise ConfigError(f"a key named {name!r} exists already; revoke it first")
    key = new_key()
    keys.append(StoredKey(name, identity or name, digest(key), time.time()))
    _write(path, keys)
    return key


def revoke_key(path: Path, name: str) -> bool:
    """Remove the key named ``name``; False when there is none."""
    keys = read_keys(path)
    kept = [key for key in keys if key.name != name]
    if len(kept) == len(keys):
        return False
    _write(path, kept)
    return True


def _write(path: Path, keys: list[StoredKey]) -> None:
    """Write the file owner-only, replacing it whole (a reader sees the old or the new)."""
    body = {
        "keys": [
            {"name": k.name, "identity": k.identity, "sha256": k.sha256, "created": k.created}
            for k in keys
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("# API keys of an agent node: hashes only (agent-node keys add/revoke).\n")
        yaml.safe_dump(body, out, sort_keys=False)
    os.replace(temporary, path)
