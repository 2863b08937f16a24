"""Agent Card signatures: a JWS (RFC 7515) over the JCS (RFC 8785) canonical card.

A card's ``signatures`` holds JWS objects in the JSON serialization with a
detached payload: ``{protected, signature, header?}``. The payload is the
card without ``signatures``, canonicalized with :func:`canonical`, so a
signature survives any re-serialization of the card and adding a second
signature never breaks the first. The signing input is
``BASE64URL(protected) + "." + BASE64URL(JCS(card))``.

Who signed: the protected header carries the key. Our signatures carry the
signer's certificate chain as ``x5c`` (leaf first), so a verifier checks the
signer against its own trust bundle, the same CAs that vouch for peers'
TLS certificates, and learns its identity (its URI SAN). A bare
``jwk`` is accepted too: the signature must verify, but it names nobody.
A signature naming its key only by reference (``jku``, ``kid``) cannot be
checked without fetching keys from wherever the card points, which this
module never does: it is skipped (logged), exactly as if it were absent.

Algorithms: ES256 (P-256), ES384 (P-384) and EdDSA (Ed25519), each bound to
its key type, so a header cannot make a verifier use a key with another
algorithm; ``crit`` headers are refused (we understand no extensions).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
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
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from agent_node.errors import ConfigError, RuntimeFailure
from agent_node.security.tls import identity_of

__all__ = ["CardSignatureError", "canonical", "sign_card", "verify_card"]

log = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: ECMAScript writes integers exactly up to here; beyond, as the double they become.
_SAFE_INTEGER = 2**53
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class CardSignatureError(RuntimeFailure):
    """A card signature that does not verify, or whose signer the trust bundle
    does not vouch for."""


# --- JCS (RFC 8785) -------------------------------------------------------


def canonical(value: Any) -> bytes:
    """``value`` (parsed JSON) in the RFC 8785 canonical form, as UTF-8.

    Object members sorted by the UTF-16 code units of their names, no
    whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does and
    numbers written as ECMAScript's ``Number.prototype.toString``. Raises
    ``ValueError`` for what I-JSON forbids (NaN, infinities, lone surrogates)
    and ``TypeError`` for what JSON cannot hold.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value) if abs(value) <= _SAFE_INTEGER else _number(float(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"JCS: {type(value).__name__} is not a JSON value")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    if not all(isinstance(key, str) for key in value):
        raise TypeError("JCS: object member names must be strings")
    # UTF-16 big-endian bytes compare as the code units do (RFC 8785 §3.2.3).
    members = sorted(value.items(), key=lambda item: item[0].encode("utf-16-be", "surrogatepass"))
    out.append("{")
    for index, (key, item) in enumerate(members):
        out.append(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
        _write(item, out)
    out.append("}")


def _number(value: float) -> str:
    """ECMAScript's Number::toString for a finite double (ECMA-262 §6.1.6.1.20)."""
    if not math.isfinite(value):
        raise ValueError(f"JCS: {value} is not a JSON number")
    if value == 0:
        return "0"  # -0 too
    digits, n = _shortest(abs(value))
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return ("-" if value < 0 else "") + text


def _shortest(value: float) -> tuple[str, int]:
    """Digits ``s`` and exponent ``n`` with ``value == 0.s * 10**n``, ``s`` the
    shortest that round-trips: what Python's ``repr`` finds too."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(digits) - len(significant))
    return significant.rstrip("0"), n


# --- JWS ------------------------------------------------------------------


@dataclass(frozen=True)
class _Algorithm:
    """One JWS algorithm and the one kind of key it may be used with."""

    curve: str | None  # an EC curve name; None for Ed25519
    digest: type[hashes.HashAlgorithm] | None
    size: int  # bytes of one signature coordinate (EC)


_ALGORITHMS = {
    "ES256": _Algorithm("secp256r1", hashes.SHA256, 32),
    "ES384": _Algorithm("secp384r1", hashes.SHA384, 48),
    "EdDSA": _Algorithm(None, None, 0),
}
_JWK_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}


def sign_card(
    card: Mapping[str, Any], key_pem_path: Path, chain_pem_path: Path, *, kid: str
) -> dict[str, Any]:
    """``card`` with one more signature, made with the key in ``key_pem_path``.

    The protected header names ``alg`` (from the key: ES256, ES384 or EdDSA),
    ``kid``, ``typ: JOSE`` and ``x5c``: the certificates of ``chain_pem_path``
    (leaf first, as ``agent-node certs issue`` writes them), whose leaf must
    hold the key's public half. Signatures already on the card stay valid.
    """
    key = _load_private_key(key_pem_path)
    chain = _load_chain(chain_pem_path)
    if chain[0].public_key() != key.public_key():
        raise ConfigError(f"{chain_pem_path}: its first certificate is not for {key_pem_path}")
    alg = _algorithm_of(key.public_key())
    if alg is None:
        raise ConfigError(f"{key_pem_path}: sign cards with a P-256, P-384 or Ed25519 key")
    header = {
        "alg": alg,
        "kid": kid,
        "typ": "JOSE",
        "x5c": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain
        ],
    }
    protected = _b64url(canonical(header))
    signing_input = f"{protected}.{_payload(card)}".encode("ascii")
    entry = {"protected": protected, "signature": _b64url(_sign(key, alg, signing_input))}
    return {**card, "signatures": [*card.get("signatures", []), entry]}


def verify_card(card: Mapping[str, Any], trust: Sequence[Path]) -> str | None:
    """Check every signature of ``card``; the signer's identity, or None.

    The identity is the one the first certificate-backed (``x5c``) signature's
    leaf names; None when the card is unsigned or signed only with bare
    ``jwk`` keys. ``x5c`` chains must lead to a CA in ``trust``. Raises
    :class:`CardSignatureError` naming the first signature that fails.
    """
    signatures = card.get("signatures")
    if not signatures:
        return None
    if not isinstance(signatures, list):
        raise CardSignatureError("card signatures: expected a list")
    payload = _payload(card)
    identities = [
        _verify_one(entry, payload, trust, f"signature {index + 1}")
        for index, entry in enumerate(signatures)
    ]
    return next((identity for identity in identities if identity), None)


def _payload(card: Mapping[str, Any]) -> str:
    try:
        return _b64url(canonical({k: v for k, v in card.items() if k != "signatures"}))
    except (TypeError, ValueError) as exc:
        raise CardSignatureError(f"the card has no canonical form: {exc}") from None
    except RecursionError:
        raise CardSignatureError("the card is nested too deeply to canonicalize") from None


def _verify_one(entry: Any, payload: str, trust: Sequence[Path], where: str) -> str | None:
    if not isinstance(entry, Mapping):
        raise CardSignatureError(f"{where}: expected an object")
    protected, signature = entry.get("protected"), entry.get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        raise CardSignatureError(f"{where}: 'protected' and 'signature' must be strings")
    header = _protected_header(protected, where)
    alg = header.get("alg")
    if alg not in _ALGORITHMS:
        raise CardSignatureError(
            f"{where}: algorithm {alg!r} is not one of {', '.join(_ALGORITHMS)}"
        )
    if "crit" in header:
        raise CardSignatureError(f"{where}: critical header parameters {header['crit']!r}")
    if "x5c" not in header and "jwk" not in header:
        log.warning("%s names its key only by reference (kid/jku); not checked", where)
        return None
    key, identity = _signer(header, trust, where)
    data = f"{protected}.{payload}".encode("ascii")
    _verify(key, alg, data, _b64url_decode(signature, where), where)
    return identity


def _protected_header(protected: str, where: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64url_decode(protected, where))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CardSignatureError(f"{where}: the protected header is not JSON") from None
    if not isinstance(header, dict):
        raise CardSignatureError(f"{where}: the protected header is not a JSON object")
    return header


def _signer(
    header: Mapping[str, Any], trust: Sequence[Path], where: str
) -> tuple[PublicKey, str | None]:
    """The key a header names, and the identity that vouches for it (x5c only)."""
    if "x5c" not in header:
        return _jwk_key(header["jwk"], where), None
    chain = _x5c_chain(header["x5c"], where)
    _check_chain(chain, trust, where)
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise CardSignatureError(f"{where}: the certificate's key is neither EC nor Ed25519")
    if "jwk" in header and _jwk_key(header["jwk"], where) != key:
        raise CardSignatureError(f"{where}: 'jwk' and the 'x5c' certificate name different keys")
    return key, identity_of(chain[0].public_bytes(serialization.Encoding.DER))


def _x5c_chain(value: Any, where: str) -> list[x509.Certificate]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CardSignatureError(f"{where}: 'x5c' must be a list of base64 certificates")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(v, validate=True)) for v in value]
    except (binascii.Error, ValueError):
        raise CardSignatureError(
            f"{where}: 'x5c' holds something that is not a certificate"
        ) from None


def _check_chain(chain: list[x509.Certificate], trust: Sequence[Path], where: str) -> None:
    """RFC 5280 path validation of the signer's chain to a CA of ``trust``, now.

    The client-certificate policy: the signer is vouched for as an agent
    identity, the same way a caller's TLS certificate is.
    """
    if not trust:
        raise CardSignatureError(f"{where}: no trust bundle to check its certificate against")
    roots = [cert for path in trust for cert in _load_chain(path)]
    verifier = PolicyBuilder().store(Store(roots)).build_client_verifier()
    leaf = chain[0]
    try:
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        signer = identity_of(leaf.public_bytes(serialization.Encoding.DER)) or "the signer"
        raise CardSignatureError(
            f"{where}: {signer} is not vouched for by the trust bundle ({exc})"
        ) from None
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise CardSignatureError(f"{where}: the signer's certificate may not sign (key usage)")


def _jwk_key(jwk: Any, where: str) -> PublicKey:
    if not isinstance(jwk, Mapping):
        raise CardSignatureError(f"{where}: 'jwk' must be an object")
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") in _JWK_CURVES:
            x, y = (int.from_bytes(_b64url_decode(jwk[c], where), "big") for c in ("x", "y"))
            return ec.EllipticCurvePublicNumbers(x, y, _JWK_CURVES[jwk["crv"]]).public_key()
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"], where))
    except (KeyError, TypeError, ValueError):
        raise CardSignatureError(f"{where}: 'jwk' is not a valid public key") from None
    raise CardSignatureError(f"{where}: 'jwk' is not an EC P-256/P-384 or Ed25519 key")


def _algorithm_of(key: PublicKey) -> str | None:
    """The one algorithm ``key`` may be used with (None: a curve we do not use)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    return next((n for n, a in _ALGORITHMS.items() if a.curve == key.curve.name), None)


def _sign(key: PrivateKey, alg: str, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    algorithm = _ALGORITHMS[alg]
    if algorithm.digest is None:
        raise ConfigError(f"{alg} is not an EC algorithm")
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm.digest())))
    # JWS writes an EC signature as R || S, fixed width (RFC 7518 §3.4), not DER.
    return r.to_bytes(algorithm.size, "big") + s.to_bytes(algorithm.size, "big")


def _verify(key: PublicKey, alg: str, data: bytes, signature: bytes, where: str) -> None:
    if _algorithm_of(key) != alg:
        raise CardSignatureError(f"{where}: algorithm {alg} does not fit the signer's key")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return
        algorithm = _ALGORITHMS[alg]
        if len(signature) != 2 * algorithm.size or algorithm.digest is None:
            raise InvalidSignature
        r = int.from_bytes(signature[: algorithm.size], "big")
        s = int.from_bytes(signature[algorithm.size :], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm.digest()))
    except InvalidSignature:
        raise CardSignatureError(
            f"{where}: does not match the card (altered after signing, or another key)"
        ) from None


def _load_private_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: sign cards with an EC (P-256) or Ed25519 key")
    return key


def _load_chain(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate file") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise CardSignatureError(f"{where}: not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
