"""The node's card: from configuration and workflows; 0.3 fields as a setting."""

from __future__ import annotations

from pathlib import Path

from agent_node import load_workflow
from agent_node.a2a.card import CardDocument, build_card
from agent_node.a2a.card_models import AgentCard
from agent_node.config import NodeConfig

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
            "tags": [],
        }
    ]
    assert card["supportedInterfaces"][0]["url"] == "https://n1.example.org/a2a"


def test_0_3_fields_by_default_and_a_stable_etag() -> None:
    hello = load_workflow(str(ROOT / "examples/hello/workflow.yaml"))
    card = build_card(config(), {"greet": hello})
    assert card["url"] == "https://n1.example.org/a2a"
    assert card["additionalInterfaces"] == [
        {"url": "https://n1.example.org/a2a", "transport": "JSONRPC"}
    ]
    first, again = CardDocument.of(card), CardDocument.of(dict(reversed(list(card.items()))))
    assert first.etag == again.etag  # the ETag hashes the canonical JSON
