"""A JWT issuer for development: a signing key and the JWK Set a node's
``auth.jwt.jwks_file`` points at (``agent-node tokens``).

Not an identity provider: it signs whatever subject it is asked to, for
whoever can read its key (written owner-only). In production, point
``auth.jwt`` at your organisation's issuer (``oidc:`` or ``jwks_url:``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent_node.errors import UsageError

__all__ = ["DEV_ISSUER", "JWKS_FILE", "KEY_FILE", "init", "issue"]

#: The ``iss`` of development tokens (``auth.jwt.issuer`` must say the same).
DEV_ISSUER = "agent-node-dev"
KEY_FILE = "issuer-key.pem"
JWKS_FILE = "jwks.json"


def init(folder: Path) -> tuple[Path, bool]:
    """Write a signing key and its JWK Set into ``folder`` (kept when there);
    the JWK Set's path and whether it was made now."""
    jwks = folder / JWKS_FILE
    if (folder / KEY_FILE).exists() and jwks.exists():
        return jwks, False
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(folder / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    entry = {**public, "kid": _kid(public), "use": "sig", "alg": "ES256"}
    jwks.write_text(json.dumps({"keys": [entry]}, indent=2) + "\n")
    return jwks, True


def issue(
    folder: Path, subject: str, audience: str, *, issuer: str = DEV_ISSUER, ttl: float = 3600
) -> str:
    """A token for ``subject``, meant for ``audience``, valid ``ttl`` seconds."""
    try:
        key = serialization.load_pem_private_key((folder / KEY_FILE).read_bytes(), None)
        public = json.loads((folder / JWKS_FILE).read_text())["keys"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise UsageError(
            f"no development issuer in {folder} ({exc}): run `agent-node tokens init` first"
        ) from None
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": public["kid"]})  # type: ignore[arg-type]


def _kid(jwk: dict[str, str]) -> str:
    """The key's RFC 7638 thumbprint (base64url SHA-256 of its canonical members)."""
    import base64
    import hashlib

    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
