"""Card signatures: JCS against RFC 8785's vectors; JWS made and checked with a real PKI."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from agent_node.a2a.signing import CardSignatureError, canonical, sign_card, verify_card
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


# --- JCS -------------------------------------------------------------------


def test_jcs_the_rfc_values_example() -> None:
    text = (
        '{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],'
        ' "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert (
        canonical(json.loads(text))
        == (
            '{"escaping":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],'
            '"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}'
        ).encode()
    )


def test_jcs_sorts_names_by_utf16_code_units() -> None:
    text = (
        '{"\\u20ac": "Euro Sign", "1": "One", "\\u0080": "Control\\u007f",'
        ' "\\ud83d\\ude02": "Smiley", "\\u00f6": "Latin Small Letter O With Diaeresis",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}'
    )
    expected = (
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😂":"Smiley",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    # U+1F602 (a surrogate pair, D83D DE02) sorts before U+FB33 in UTF-16, after it in code points.
    assert canonical(json.loads(text)) == expected.encode()


@pytest.mark.parametrize(
    ("ieee_754", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_jcs_numbers_of_rfc_appendix_b(ieee_754: str, expected: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(ieee_754))
    assert canonical(value) == expected.encode()


def test_jcs_integers_are_exact_up_to_2_53_then_doubles() -> None:
    assert canonical([0, -7, 2**53, 10**21, 1.0, -0.0]) == (b"[0,-7,9007199254740992,1e+21,1,0]")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800", {"k": [float("-inf")]}])
def test_jcs_refuses_what_i_json_forbids(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical(bad)


def test_jcs_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        canonical({1: "a"})
    with pytest.raises(TypeError):
        canonical({"a": {1, 2}})


# --- JWS -------------------------------------------------------------------


def test_a_card_signed_with_a_node_key_verifies_against_the_ca(certs: Path) -> None:
    signed = sign_card(CARD, certs / "writer-key.pem", certs / "writer.pem", kid="writer-2026")
    assert {k: v for k, v in signed.items() if k != "signatures"} == CARD
    (signature,) = signed["signatures"]
    header = header_of(signature)
    assert header["alg"] == "ES256" and header["kid"] == "writer-2026"
    assert len(header["x5c"]) == 2  # leaf, then the CA, as `certs issue` writes the chain
    assert len(base64.urlsafe_b64decode(signature["signature"] + "==")) == 64  # R || S
    assert verify_card(signed, [certs / "ca.pem"]) == "spiffe://example.org/agent/writer"
    # Canonical: the same card in another member order still verifies.
    reordered = dict(reversed(list(signed.items())))
    assert verify_card(reordered, [certs / "ca.pem"]) == "spiffe://example.org/agent/writer"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda card: card.update(description="Writes other things."),
        lambda card: card["skills"][0]["tags"].append("admin"),
        lambda card: card.update(iconUrl="https://evil.example/icon.png"),
    ],
)
def test_a_card_altered_after_signing_fails(certs: Path, tamper: Any) -> None:
    signed = json.loads(json.dumps(sign_card(CARD, *node(certs, "writer"), kid="w")))
    tamper(signed)
    with pytest.raises(CardSignatureError, match="signature 1: does not match the card"):
        verify_card(signed, [certs / "ca.pem"])


def test_a_signer_from_another_ca_is_refused(certs: Path) -> None:
    signed = sign_card(CARD, *node(certs.parent / "rogue", "mallory"), kid="m")
    assert verify_card(signed, [certs.parent / "rogue" / "ca.pem"]) is not None
    with pytest.raises(CardSignatureError) as failure:
        verify_card(signed, [certs / "ca.pem"])
    assert "spiffe://example.org/agent/mallory is not vouched for by the trust bundle" in str(
        failure.value
    )


def test_a_second_signature_keeps_the_first_valid_and_both_are_checked(certs: Path) -> None:
    once = sign_card(CARD, *node(certs, "writer"), kid="one")
    twice = sign_card(once, *node(certs.parent / "rogue", "mallory"), kid="two")
    assert len(twice["signatures"]) == 2
    assert verify_card(once, [certs / "ca.pem"]) == "spiffe://example.org/agent/writer"
    with pytest.raises(CardSignatureError, match="signature 2"):
        verify_card(twice, [certs / "ca.pem"])
    both = [certs / "ca.pem", certs.parent / "rogue" / "ca.pem"]
    assert verify_card(twice, both) == "spiffe://example.org/agent/writer"


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
    assert verify_card(signed, []) is None
    signed["name"] = "someone else"
    with pytest.raises(CardSignatureError, match="does not match"):
        verify_card(signed, [])


def test_an_eddsa_jwk_signature_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    assert verify_card(jws(CARD, {"alg": "EdDSA", "jwk": jwk}, key.sign), []) is None


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


def test_unsigned_cards_and_key_references_name_no_signer(certs: Path) -> None:
    assert verify_card(CARD, [certs / "ca.pem"]) is None
    assert verify_card({**CARD, "signatures": []}, [certs / "ca.pem"]) is None
    # A key we would have to fetch from where the card points is never fetched.
    by_reference = jws(CARD, {"alg": "ES256", "kid": "k", "jku": "https://x.example/jwks"}, bytes)
    assert verify_card(by_reference, [certs / "ca.pem"]) is None


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
    signed = sign_card(CARD, *node(certs, "writer"), kid="w")
    with pytest.raises(CardSignatureError, match="no trust bundle"):
        verify_card(signed, [])


def test_signing_needs_the_key_of_the_chains_leaf(certs: Path) -> None:
    rogue = certs.parent / "rogue"
    with pytest.raises(ConfigError, match="is not for"):
        sign_card(CARD, rogue / "mallory-key.pem", certs / "writer.pem", kid="x")
    with pytest.raises(ConfigError, match="cannot read it"):
        sign_card(CARD, certs / "missing-key.pem", certs / "writer.pem", kid="x")


def node(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}-key.pem", folder / f"{name}.pem"
