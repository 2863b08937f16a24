"""Card signatures (§8.4), made and checked with a real PKI; keys found by x5c, kid or jwk."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.hashes import SHA256

from agent_node.a2a.peers.signing import (
    CardSignatureError,
    KeyLookup,
    jwks_of,
    sign_card,
    verify_card,
)
from agent_node.a2a.protocol.card_payload import signed_form
from agent_node.a2a.protocol.jcs import canonical
from agent_node.a2a.protocol.jws import PublicKey
from agent_node.errors import ConfigError
from agent_node.security import pki

CARD: dict[str, Any] = {
    "name": "writer",
    "description": "Writes things.",
    "version": "1.0.0",
    "supportedInterfaces": [
        {
            "url": "https://127.0.0.1:8470/a2a",
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        }
    ],
    "capabilities": {"streaming": True},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [{"id": "write", "name": "Write", "description": "Prose.", "tags": ["text", "€"]}],
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA for example.org that issued writer; a rogue CA (same domain) that issued mallory."""
    folder = tmp_path_factory.mktemp("pki") / "certs"
    pki.init_ca(folder, trust_domain="example.org")
    pki.issue(folder, "writer")
    rogue = folder.parent / "rogue"
    pki.init_ca(rogue, trust_domain="example.org")
    pki.issue(rogue, "mallory")
    return folder


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header_of(signature: dict[str, str]) -> dict[str, Any]:
    protected = signature["protected"]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(protected + "==="))
    return decoded


WRITER = "spiffe://example.org/agent/writer"
JKU = "https://127.0.0.1:8470/.well-known/jwks.json"


def signer(card: dict[str, Any], trust: list[Path], keys: KeyLookup | None = None) -> str | None:
    return verify_card(card, trust, keys).signer


def test_a_card_signed_with_a_node_key_verifies_against_the_ca(certs: Path) -> None:
    signed = sign_card(CARD, certs / "writer-key.pem", certs / "writer.pem", jku=JKU)
    assert {k: v for k, v in signed.items() if k != "signatures"} == CARD
    (signature,) = signed["signatures"]
    header = header_of(signature)
    (jwk,) = jwks_of(certs / "writer.pem")["keys"]
    assert header["alg"] == "ES256" == jwk["alg"] and header["typ"] == "JOSE"
    assert header["kid"] == jwk["kid"] and header["jku"] == JKU and jwk["use"] == "sig"
    assert len(header["x5c"]) == 2 == len(jwk["x5c"])  # leaf, then the CA, as `certs issue` writes
    assert len(base64.urlsafe_b64decode(signature["signature"] + "==")) == 64  # R || S
    verified = verify_card(signed, [certs / "ca.pem"])
    assert (verified.signer, verified.trusted, verified.skipped) == (WRITER, 1, ())
    # Canonical: the same card in another member order still verifies.
    reordered = dict(reversed(list(signed.items())))
    assert signer(reordered, [certs / "ca.pem"]) == WRITER


def test_the_signature_covers_the_10_card_without_defaults(certs: Path) -> None:
    """§8.4.1: the payload is the 1.0 card with its defaults dropped; the 0.3
    fields a card also carries (for 0.3 clients) are not part of it."""
    interface = {**CARD["supportedInterfaces"][0], "tenant": ""}
    card = {**CARD, "supportedInterfaces": [interface], "capabilities": {"extensions": []}}
    signed = sign_card(card, *node(certs, "writer"))
    (signature,) = signed["signatures"]
    payload = canonical(signed_form(card))
    assert b'"tenant"' not in payload and b'"capabilities":{}' in payload
    r_s = base64.urlsafe_b64decode(signature["signature"] + "==")
    der = encode_dss_signature(int.from_bytes(r_s[:32], "big"), int.from_bytes(r_s[32:], "big"))
    data = f"{signature['protected']}.{b64url(payload)}".encode()
    leaf = x509.load_pem_x509_certificate((certs / "writer.pem").read_bytes()).public_key()
    assert isinstance(leaf, ec.EllipticCurvePublicKey)
    leaf.verify(der, data, ec.ECDSA(SHA256()))  # raises unless that is what was signed
    v03 = {**signed, "url": "https://127.0.0.1:8470/a2a", "protocolVersion": "0.3.0"}
    assert signer(v03, [certs / "ca.pem"]) == WRITER


@pytest.mark.parametrize(
    "tamper",
    [
        lambda card: card.update(description="Writes other things."),
        lambda card: card["skills"][0]["tags"].append("admin"),
        lambda card: card.update(iconUrl="https://evil.example/icon.png"),
    ],
)
def test_a_card_altered_after_signing_fails(certs: Path, tamper: Any) -> None:
    signed = json.loads(json.dumps(sign_card(CARD, *node(certs, "writer"))))
    tamper(signed)
    with pytest.raises(CardSignatureError, match="signature 1: does not match the card"):
        verify_card(signed, [certs / "ca.pem"])


def test_a_signer_from_another_ca_is_refused(certs: Path) -> None:
    signed = sign_card(CARD, *node(certs.parent / "rogue", "mallory"))
    assert signer(signed, [certs.parent / "rogue" / "ca.pem"]) is not None
    with pytest.raises(CardSignatureError) as failure:
        verify_card(signed, [certs / "ca.pem"])
    assert "spiffe://example.org/agent/mallory is not vouched for by the trust bundle" in str(
        failure.value
    )


def test_a_second_signature_keeps_the_first_valid_and_both_are_checked(certs: Path) -> None:
    once = sign_card(CARD, *node(certs, "writer"))
    twice = sign_card(once, *node(certs.parent / "rogue", "mallory"))
    assert len(twice["signatures"]) == 2
    assert signer(once, [certs / "ca.pem"]) == WRITER
    with pytest.raises(CardSignatureError, match="signature 2"):
        verify_card(twice, [certs / "ca.pem"])
    both = [certs / "ca.pem", certs.parent / "rogue" / "ca.pem"]
    assert signer(twice, both) == WRITER


def jws(card: dict[str, Any], header: dict[str, Any], sign: Any) -> dict[str, Any]:
    """A signature made without our signer: JSON header, detached JCS payload."""
    protected = b64url(json.dumps(header).encode())
    payload = b64url(canonical({k: v for k, v in card.items() if k != "signatures"}))
    signature = sign(f"{protected}.{payload}".encode())
    return {**card, "signatures": [{"protected": protected, "signature": b64url(signature)}]}


def es256(key: ec.EllipticCurvePrivateKey) -> Any:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def test_a_jwk_only_signature_verifies_and_names_nobody() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    signed = jws(CARD, {"alg": "ES256", "kid": "k", "jwk": jwk}, es256(key))
    assert verify_card(signed, []) == verify_card(CARD, [])  # verified, names nobody
    signed["name"] = "someone else"
    with pytest.raises(CardSignatureError, match="does not match"):
        verify_card(signed, [])


def test_an_eddsa_jwk_signature_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    assert signer(jws(CARD, {"alg": "EdDSA", "jwk": jwk}, key.sign), []) is None


def test_a_header_cannot_pick_another_algorithm_for_the_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    for alg, match in (("ES384", "does not fit"), ("none", "is not one of"), ("HS256", "not one")):
        signed = jws(CARD, {"alg": alg, "jwk": jwk}, es256(key))
        with pytest.raises(CardSignatureError, match=match):
            verify_card(signed, [])
    critical = jws(CARD, {"alg": "ES256", "jwk": jwk, "crit": ["exp"]}, es256(key))
    with pytest.raises(CardSignatureError, match="critical"):
        verify_card(critical, [])


def test_unsigned_cards_and_unknown_keys_name_no_signer(certs: Path) -> None:
    assert verify_card(CARD, [certs / "ca.pem"]).signer is None
    assert verify_card({**CARD, "signatures": []}, [certs / "ca.pem"]).trusted == 0
    # A key named by reference only, and found nowhere: skipped, said why.
    by_reference = jws(CARD, {"alg": "ES256", "kid": "k", "jku": "https://x.example/jwks"}, bytes)
    verified = verify_card(by_reference, [certs / "ca.pem"])
    assert (verified.signer, verified.trusted) == (None, 0)
    assert verified.skipped == ("signature 1: no key we trust has kid 'k'",)


def by_kid(kid: str, key: PublicKey, who: str) -> KeyLookup:
    return lambda header: (key, who) if header.get("kid") == kid else None


def test_a_key_found_by_kid_vouches_for_the_card() -> None:
    """How a2a-sdk signs: kid (and jku), no certificate; the lookup is the
    peer's configured keys or the JWK Set on its origin (card_keys.py)."""
    key = ec.generate_private_key(ec.SECP256R1())
    signed = jws(CARD, {"alg": "ES256", "kid": "k1", "typ": "JOSE"}, es256(key))
    found = verify_card(signed, [], by_kid("k1", key.public_key(), "writer's card_keys (k1)"))
    assert (found.signer, found.trusted) == ("writer's card_keys (k1)", 1)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CardSignatureError, match="does not match"):
        verify_card(signed, [], by_kid("k1", other, "x"))
    assert verify_card(signed, [], by_kid("k2", other, "x")).skipped


def test_every_form_a_signer_may_have_signed_verifies() -> None:
    """The spec's form, the official SDKs' (every empty value dropped too)
    and the card as served (agent-node before §8.4.1) are each accepted."""
    key = ec.generate_private_key(ec.SECP256R1())
    card = {**CARD, "skills": [{**CARD["skills"][0], "tags": [], "examples": [""]}]}
    sdk_form = json.loads(json.dumps(signed_form(card)))
    del sdk_form["skills"][0]["tags"], sdk_form["skills"][0]["examples"]
    lookup = by_kid("k", key.public_key(), "someone")
    for form in (signed_form(card), sdk_form, card):
        signature = jws(form, {"alg": "ES256", "kid": "k"}, es256(key))["signatures"]
        assert signer({**card, "signatures": signature}, [], lookup) == "someone"
    other = {**card, "description": "Writes other things."}
    with pytest.raises(CardSignatureError, match="does not match"):
        verify_card({**other, "signatures": signature}, [], lookup)


@pytest.mark.parametrize(
    "signatures",
    [
        "not a list",
        ["not an object"],
        [{"protected": 1, "signature": "x"}],
        [{"protected": "!!", "signature": "x"}],
        [{"protected": b64url(b"[1]"), "signature": "x"}],
        [{"protected": b64url(b'{"alg":"ES256","x5c":["AAAA"]}'), "signature": "x"}],
    ],
)
def test_malformed_signatures_are_clear_errors(certs: Path, signatures: Any) -> None:
    with pytest.raises(CardSignatureError):
        verify_card({**CARD, "signatures": signatures}, [certs / "ca.pem"])


def test_a_certificate_signature_needs_a_trust_bundle(certs: Path) -> None:
    signed = sign_card(CARD, *node(certs, "writer"))
    with pytest.raises(CardSignatureError, match="no trust bundle"):
        verify_card(signed, [])


def test_signing_needs_the_key_of_the_chains_leaf(certs: Path) -> None:
    rogue = certs.parent / "rogue"
    with pytest.raises(ConfigError, match="is not for"):
        sign_card(CARD, rogue / "mallory-key.pem", certs / "writer.pem")
    with pytest.raises(ConfigError, match="cannot read it"):
        sign_card(CARD, certs / "missing-key.pem", certs / "writer.pem")


def node(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}-key.pem", folder / f"{name}.pem"
