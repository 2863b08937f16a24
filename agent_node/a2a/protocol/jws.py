"""The JWS (RFC 7515) and JWK (RFC 7517) pieces of Agent Card signatures.

Algorithms: ES256 (P-256), ES384 (P-384) and EdDSA (Ed25519), each bound to
its key type, so a header cannot make a verifier use a key with another
algorithm. Keys travel as JWKs (``kty``/``crv``/``x``/``y``) and are named
by their RFC 7638 thumbprint. Every failure is a
:class:`CardSignatureError` saying which signature (``where``) and why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from agent_node.errors import ConfigError, RuntimeFailure

__all__ = [
    "ALGORITHMS",
    "CardSignatureError",
    "PrivateKey",
    "PublicKey",
    "algorithm_of",
    "b64url",
    "b64url_decode",
    "key_from_jwk",
    "load_chain",
    "load_private_key",
    "protected_header",
    "public_jwk",
    "sign",
    "thumbprint",
    "verify",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class CardSignatureError(RuntimeFailure):
    """A card signature that does not verify, or whose signer the trust bundle
    does not vouch for."""


@dataclass(frozen=True)
class _Algorithm:
    """One JWS algorithm and the one kind of key it may be used with."""

    curve: str | None  # an EC curve name; None for Ed25519
    digest: type[hashes.HashAlgorithm] | None
    size: int  # bytes of one signature coordinate (EC)
    jwk_curve: str


ALGORITHMS = {
    "ES256": _Algorithm("secp256r1", hashes.SHA256, 32, "P-256"),
    "ES384": _Algorithm("secp384r1", hashes.SHA384, 48, "P-384"),
    "EdDSA": _Algorithm(None, None, 0, "Ed25519"),
}
_JWK_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}


def algorithm_of(key: PublicKey) -> str | None:
    """The one algorithm ``key`` may be used with (None: a curve we do not use)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return next((n for n, a in ALGORITHMS.items() if a.curve == key.curve.name), None)


def sign(key: PrivateKey, alg: str, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    algorithm = ALGORITHMS[alg]
    if algorithm.digest is None:
        raise ConfigError(f"{alg} is not an EC algorithm")
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm.digest())))
    # JWS writes an EC signature as R || S, fixed width (RFC 7518 §3.4), not DER.
    return r.to_bytes(algorithm.size, "big") + s.to_bytes(algorithm.size, "big")


def verify(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over ``data`` with ``alg`` (which must
    be ``key``'s own algorithm)."""
    if algorithm_of(key) != alg:
        return False
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        algorithm = ALGORITHMS[alg]
        if len(signature) != 2 * algorithm.size or algorithm.digest is None:
            return False
        r = int.from_bytes(signature[: algorithm.size], "big")
        s = int.from_bytes(signature[algorithm.size :], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm.digest()))
    except InvalidSignature:
        return False
    return True


def public_jwk(key: PublicKey) -> dict[str, str]:
    """``key`` as a JWK's required members (RFC 7518 §6.2, RFC 8037)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    numbers = key.public_numbers()
    alg = algorithm_of(key)
    if alg is None:
        raise ConfigError(f"a {key.curve.name} key cannot sign cards (P-256, P-384, Ed25519)")
    size = ALGORITHMS[alg].size
    return {
        "crv": ALGORITHMS[alg].jwk_curve,
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(size, "big")),
        "y": b64url(numbers.y.to_bytes(size, "big")),
    }


def thumbprint(key: PublicKey) -> str:
    """The key's JWK thumbprint (RFC 7638, SHA-256): the ``kid`` our signatures carry."""
    members = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(members.encode()).digest())


def key_from_jwk(jwk: Any, where: str) -> PublicKey:
    if not isinstance(jwk, Mapping):
        raise CardSignatureError(f"{where}: a JWK must be an object")
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") in _JWK_CURVES:
            x, y = (int.from_bytes(b64url_decode(jwk[c], where), "big") for c in ("x", "y"))
            return ec.EllipticCurvePublicNumbers(x, y, _JWK_CURVES[jwk["crv"]]).public_key()
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"], where))
    except (KeyError, TypeError, ValueError):
        raise CardSignatureError(f"{where}: not a valid public key (JWK)") from None
    raise CardSignatureError(f"{where}: the JWK is not an EC P-256/P-384 or Ed25519 key")


def protected_header(protected: str, where: str) -> dict[str, Any]:
    try:
        header = json.loads(b64url_decode(protected, where))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CardSignatureError(f"{where}: the protected header is not JSON") from None
    if not isinstance(header, dict):
        raise CardSignatureError(f"{where}: the protected header is not a JSON object")
    return header


def load_private_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: sign cards with an EC (P-256) or Ed25519 key")
    return key


def load_chain(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate file") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise CardSignatureError(f"{where}: not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
