"""The node's card: from configuration and workflows; 0.3 fields as a setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_node import load_workflow
from agent_node.a2a.protocol.card_models import AgentCard
from agent_node.a2a.protocol.card_payload import signed_form, spec_disagreements, verifier_forms
from agent_node.a2a.server.card import CardDocument, build_card
from agent_node.config import NodeConfig
from agent_node.errors import ConfigError
from agent_node.security import pki

ROOT = Path(__file__).resolve().parents[2]


def config(**fields: object) -> NodeConfig:
    return NodeConfig.model_validate(
        {"name": "n1", "public_url": "https://n1.example.org", **fields}
    )


def test_a_pure_1_0_card_when_the_setting_is_off() -> None:
    hello = load_workflow(str(ROOT / "examples/hello/workflow.yaml"))
    card = build_card(config(card_v03_fields=False), {"greet": hello})
    assert set(card) == {
        "name",
        "description",
        "version",
        "supportedInterfaces",
        "capabilities",
        "defaultInputModes",
        "defaultOutputModes",
        "skills",
    }
    AgentCard.model_validate(card)
    assert card["skills"] == [
        {
            "id": "greet",
            "name": "greet",
            "description": "Greets someone, checks two things at once, and decides.",
            "tags": ["greet"],  # never empty: see test_the_card_has_no_empty_value
        }
    ]
    assert card["supportedInterfaces"][0]["url"] == "https://n1.example.org/a2a"


def test_the_card_has_no_empty_value_that_verifiers_read_apart(tmp_path: Path) -> None:
    """The official SDKs' signature verifiers drop empty lists and objects the
    spec keeps (§8.4.1): a card with none verifies under all of them. The mTLS
    requirement names a role rather than none, a skill without tags its id."""
    hello = load_workflow(str(ROOT / "examples/hello/workflow.yaml"))
    pki.init_ca(tmp_path, trust_domain="example.org")
    pki.issue(tmp_path, "n1")
    tls = {"cert": str(tmp_path / "n1.pem"), "key": str(tmp_path / "n1-key.pem")}
    tls["trust"] = [str(tmp_path / "ca.pem")]
    card = build_card(config(tls=tls), {"greet": hello})
    required = [{"schemes": {"mtls": {"list": ["client-certificate"]}}}]
    assert card["securityRequirements"] == required == card["skills"][0]["securityRequirements"]
    assert card["security"] == [{"mtls": ["client-certificate"]}]  # the 0.3 form
    assert spec_disagreements(card) == []
    assert verifier_forms(card) == [signed_form(card), card]  # the SDKs read it as the spec


def test_0_3_fields_by_default_and_a_stable_etag() -> None:
    hello = load_workflow(str(ROOT / "examples/hello/workflow.yaml"))
    card = build_card(config(), {"greet": hello})
    assert card["url"] == "https://n1.example.org/a2a"
    assert card["additionalInterfaces"] == [
        {"url": "https://n1.example.org/a2a", "transport": "JSONRPC"}
    ]
    first, again = CardDocument.of(card), CardDocument.of(dict(reversed(list(card.items()))))
    assert first.etag == again.etag  # the ETag hashes the canonical JSON


def test_the_card_lists_the_http_bindings_served() -> None:
    def served(*bindings: str, grpc: bool = False) -> tuple[list[tuple[str, str]], bool]:
        listen: dict[str, object] = {"bindings": list(bindings)}
        if grpc:
            listen["grpc_port"] = 8471
        card = build_card(config(listen=listen), {})
        kinds = [(i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]]
        AgentCard.model_validate(card)
        return kinds, "preferredTransport" in card

    assert served("jsonrpc", "rest") == (
        [("JSONRPC", "1.0"), ("HTTP+JSON", "1.0"), ("JSONRPC", "0.3")],
        True,
    )
    assert served("jsonrpc") == ([("JSONRPC", "1.0"), ("JSONRPC", "0.3")], True)
    # No JSON-RPC: nothing for a 0.3 client (0.3 fields name a JSON-RPC endpoint).
    assert served("rest") == ([("HTTP+JSON", "1.0")], False)
    assert served("rest", grpc=True) == ([("HTTP+JSON", "1.0"), ("GRPC", "1.0")], False)
    assert served(grpc=True) == ([("GRPC", "1.0")], False)  # gRPC alone


def test_bindings_must_be_known_and_some_binding_served() -> None:
    with pytest.raises(ValidationError, match="no A2A binding is served"):
        config(listen={"bindings": []})
    with pytest.raises(ValidationError):
        config(listen={"bindings": ["soap"]})
    with pytest.raises(ConfigError, match=r"listen \(from the flags\): bindings"):
        config().with_overrides(bindings=["jsonrpc", "graphql"])
    assert config().with_overrides(bindings=["rest"]).listen.bindings == ["rest"]
    alone = config().with_overrides(bindings=[], grpc_port=0).listen
    assert (alone.bindings, alone.grpc_port) == ([], 0)
