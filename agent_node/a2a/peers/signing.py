"""Agent Card signatures (A2A 1.0 §8.4): a JWS over the card's canonical form.

A card's ``signatures`` holds JWS objects in the JSON serialization with a
detached payload: ``{protected, signature, header?}``. The payload is
:func:`~agent_node.a2a.protocol.card_payload.signed_form` of the card (the 1.0 fields
only, defaults dropped) in JCS (:mod:`agent_node.a2a.protocol.jcs`), so a signature
survives any re-serialization of the card, the 0.3 fields beside it, and a
second signature. The signing input is
``BASE64URL(protected) + "." + BASE64URL(JCS(payload))``.

Ours (:func:`sign_card`) name the key four ways in the protected header:
``kid`` (its RFC 7638 thumbprint), ``jku`` (the node's JWKS,
:func:`jwks_of`), ``x5c`` (the signer's certificate chain, leaf first) and
``alg``/``typ``. So a2a-sdk, ``@a2a-js/sdk`` and the TCK's validator find the
key by ``kid``/``jku``, and a verifier sharing our trust bundle learns who
signed from the certificate.

Checking a peer's card (:func:`verify_card`), each signature's key is
looked for in this order:

1. ``keys`` (by the header): the peer's configured keys (by ``kid``) and the
   JWKS fetched from the peer's own origin (``jku``): see
   :mod:`agent_node.a2a.peers.card_keys`. They name whoever vouches for them.
2. ``x5c``: the chain must lead to a CA of ``trust``; its leaf's identity
   (URI SAN) signed.
3. a bare ``jwk``: it must verify, but it names nobody.

A signature whose key is found nowhere is skipped (reported, logged). One
whose key is found must verify over one of the forms a signer may have
signed (:func:`~agent_node.a2a.protocol.card_payload.verifier_forms`), else the card
is refused. ``crit`` headers are refused (we understand no extensions).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from agent_node.a2a.protocol import jws
from agent_node.a2a.protocol.card_payload import signed_form, verifier_forms
from agent_node.a2a.protocol.jcs import canonical
from agent_node.a2a.protocol.jws import CardSignatureError, PublicKey
from agent_node.errors import ConfigError
from agent_node.security.tls import identity_of

__all__ = [
    "CardSignatureError",
    "KeyLookup",
    "Verification",
    "jwks_of",
    "sign_card",
    "verify_card",
]

log = logging.getLogger(__name__)

#: Finds the key a protected header names: the key and who vouches for it, or None.
KeyLookup = Callable[[Mapping[str, Any]], tuple[PublicKey, str] | None]


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_card` found."""

    #: Who the first signature backed by a trusted key names (a certificate's
    #: identity, or who vouches for a configured or fetched key); None when
    #: no such signature verified.
    signer: str | None = None
    #: Signatures that verified with a trusted key (not a bare ``jwk``).
    trusted: int = 0
    #: Signatures skipped because their key was found nowhere, and why.
    skipped: tuple[str, ...] = ()


def sign_card(
    card: Mapping[str, Any],
    key_pem_path: Path,
    chain_pem_path: Path,
    *,
    jku: str | None = None,
) -> dict[str, Any]:
    """``card`` with one more signature, made with the key in ``key_pem_path``.

    The protected header names ``alg`` (from the key: ES256, ES384 or EdDSA),
    ``kid`` (the key's thumbprint), ``jku`` when given, ``typ: JOSE`` and
    ``x5c``: the certificates of ``chain_pem_path`` (leaf first, as
    ``agent-node certs issue`` writes them), whose leaf must hold the key's
    public half. Signatures already on the card stay valid.
    """
    key = jws.load_private_key(key_pem_path)
    chain = jws.load_chain(chain_pem_path)
    if chain[0].public_key() != key.public_key():
        raise ConfigError(f"{chain_pem_path}: its first certificate is not for {key_pem_path}")
    alg = jws.algorithm_of(key.public_key())
    if alg is None:
        raise ConfigError(f"{key_pem_path}: sign cards with a P-256, P-384 or Ed25519 key")
    header: dict[str, Any] = {"alg": alg, "kid": jws.thumbprint(key.public_key()), "typ": "JOSE"}
    if jku is not None:
        header["jku"] = jku
    header["x5c"] = _x5c(chain)
    protected = jws.b64url(canonical(header))
    signing_input = f"{protected}.{jws.b64url(canonical(signed_form(card)))}".encode("ascii")
    signature = jws.b64url(jws.sign(key, alg, signing_input))
    entry = {"protected": protected, "signature": signature}
    return {**card, "signatures": [*card.get("signatures", []), entry]}


def jwks_of(chain_pem_path: Path) -> dict[str, Any]:
    """The JWK Set naming the key of ``chain_pem_path``'s leaf certificate as
    our signatures do (``kid``, ``alg``, ``use: sig``, ``x5c``): what the
    node serves at the ``jku`` of its card's signature."""
    chain = jws.load_chain(chain_pem_path)
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"{chain_pem_path}: sign cards with an EC (P-256) or Ed25519 key")
    jwk = {
        **jws.public_jwk(key),
        "kid": jws.thumbprint(key),
        "alg": jws.algorithm_of(key),
        "use": "sig",
        "x5c": _x5c(chain),
    }
    return {"keys": [jwk]}


def verify_card(
    card: Mapping[str, Any], trust: Sequence[Path], keys: KeyLookup | None = None
) -> Verification:
    """Check every signature of ``card`` (see the module doc for where keys
    come from). Raises :class:`CardSignatureError` naming the first signature
    whose key was found and which does not verify."""
    signatures = card.get("signatures")
    if not signatures:
        return Verification()
    if not isinstance(signatures, list):
        raise CardSignatureError("card signatures: expected a list")
    try:
        payloads = [jws.b64url(canonical(form)) for form in verifier_forms(card)]
    except (TypeError, ValueError) as exc:
        raise CardSignatureError(f"the card has no canonical form: {exc}") from None
    except RecursionError:
        raise CardSignatureError("the card is nested too deeply to canonicalize") from None
    signer: str | None = None
    trusted, skipped = 0, []
    for index, entry in enumerate(signatures):
        where = f"signature {index + 1}"
        protected, alg, header, raw = _parts(entry, where)
        found = _key(header, trust, keys, where)
        if found is None:
            skipped.append(f"{where}: no key we trust has kid {header.get('kid')!r}")
            log.warning("card of %r: %s; not checked", card.get("name"), skipped[-1])
            continue
        key, name = found
        if jws.algorithm_of(key) != alg:
            raise CardSignatureError(f"{where}: algorithm {alg} does not fit the signer's key")
        if not any(jws.verify(key, alg, f"{protected}.{p}".encode("ascii"), raw) for p in payloads):
            raise CardSignatureError(
                f"{where}: does not match the card (altered after signing, or another key)"
            )
        if name is not None:
            trusted += 1
            signer = signer or name
    return Verification(signer, trusted, tuple(skipped))


def _parts(entry: Any, where: str) -> tuple[str, str, dict[str, Any], bytes]:
    """A signature's protected header (as sent and parsed), algorithm and bytes."""
    if not isinstance(entry, Mapping):
        raise CardSignatureError(f"{where}: expected an object")
    protected, signature = entry.get("protected"), entry.get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        raise CardSignatureError(f"{where}: 'protected' and 'signature' must be strings")
    header = jws.protected_header(protected, where)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in jws.ALGORITHMS:
        raise CardSignatureError(
            f"{where}: algorithm {alg!r} is not one of {', '.join(jws.ALGORITHMS)}"
        )
    if "crit" in header:
        raise CardSignatureError(f"{where}: critical header parameters {header['crit']!r}")
    return protected, alg, header, jws.b64url_decode(signature, where)


def _key(
    header: Mapping[str, Any], trust: Sequence[Path], keys: KeyLookup | None, where: str
) -> tuple[PublicKey, str | None] | None:
    """The key a header names and who vouches for it (None: nobody, a bare
    ``jwk``); None when the key is found nowhere."""
    looked_up = keys(header) if keys is not None else None
    if looked_up is not None:
        return looked_up
    if "x5c" in header:
        return _x5c_signer(header, trust, where)
    if "jwk" in header:
        return jws.key_from_jwk(header["jwk"], where), None
    return None


def _x5c_signer(
    header: Mapping[str, Any], trust: Sequence[Path], where: str
) -> tuple[PublicKey, str]:
    chain = _x5c_chain(header["x5c"], where)
    _check_chain(chain, trust, where)
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise CardSignatureError(f"{where}: the certificate's key is neither EC nor Ed25519")
    if "jwk" in header and jws.key_from_jwk(header["jwk"], where) != key:
        raise CardSignatureError(f"{where}: 'jwk' and the 'x5c' certificate name different keys")
    leaf = chain[0]
    return key, identity_of(
        leaf.public_bytes(serialization.Encoding.DER)
    ) or leaf.subject.rfc4514_string()


def _x5c(chain: list[x509.Certificate]) -> list[str]:
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]


def _x5c_chain(value: Any, where: str) -> list[x509.Certificate]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CardSignatureError(f"{where}: 'x5c' must be a list of base64 certificates")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(v, validate=True)) for v in value]
    except ValueError:  # binascii.Error is one
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
    roots = [cert for path in trust for cert in jws.load_chain(path)]
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
