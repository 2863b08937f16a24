"""Push tokens: how a peer's push names the delegation it is about.

A delegation's token is its idempotency key (known before the send, so a
push that comes before the send's answer finds its row) and an HMAC of it
under the node's secret, so only tokens this node made are taken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["push_token", "token_key"]


def push_token(secret: bytes, key: str) -> str:
    """The token a peer must send back with pushes about the delegation of
    idempotency key ``key``: the key itself, and proof we made it."""
    mac = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=") + "." + mac


def token_key(secret: bytes, token: str) -> str | None:
    """The idempotency key a genuine ``token`` names; None for any other."""
    encoded, _, mac = token.rpartition(".")
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    expected = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
    return key if hmac.compare_digest(expected, mac) else None
