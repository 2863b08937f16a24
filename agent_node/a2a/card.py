"""The node's Agent Card, built from its configuration and hosted workflows.

The card source (``cards/*.yaml``) holds the words: name, description,
provider, and how each skill is described. Which skills exist, and where
the node listens, come from the node configuration; a skill with no words
in the card source takes its workflow's description. Nothing is written in
two places.

Served with a strong ``ETag`` (a hash of the card's canonical JSON) and
``Cache-Control: max-age``, so clients can cache it and revalidate cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_node.config import CardSource, NodeConfig
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["PROTOCOL_PATH", "CardDocument", "build_card"]

#: Where the JSON-RPC endpoint lives on a node.
PROTOCOL_PATH = "/a2a"
MAX_AGE = 300


@dataclass(frozen=True)
class CardDocument:
    """A card, serialized once: its body, ETag and Cache-Control value."""

    card: Mapping[str, Any]
    body: bytes
    etag: str
    cache_control: str = f"public, max-age={MAX_AGE}"

    @classmethod
    def of(cls, card: Mapping[str, Any]) -> CardDocument:
        body = json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode()
        canonical = json.dumps(card, sort_keys=True, separators=(",", ":")).encode()
        return cls(card, body, f'"{hashlib.sha256(canonical).hexdigest()[:32]}"')


def build_card(config: NodeConfig, workflows: Mapping[str, CompiledWorkflow]) -> dict[str, Any]:
    """The A2A 1.0 card of a node hosting ``workflows`` (skill id → workflow)."""
    source = config.card_source()
    endpoint = config.url + PROTOCOL_PATH
    card: dict[str, Any] = {
        "name": source.name,
        "description": source.description,
        "version": source.version,
        "supportedInterfaces": [
            {"url": endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ],
        "capabilities": {"streaming": False, "pushNotifications": False},
        "defaultInputModes": source.default_input_modes,
        "defaultOutputModes": source.default_output_modes,
        "skills": [_skill(source, skill_id, wf) for skill_id, wf in workflows.items()],
    }
    optional = {
        "provider": source.provider,
        "documentationUrl": source.documentation_url,
        "iconUrl": source.icon_url,
    }
    card.update({key: value for key, value in optional.items() if value})
    return card


def _skill(source: CardSource, skill_id: str, workflow: CompiledWorkflow) -> dict[str, Any]:
    text = source.skills.get(skill_id)
    described = workflow.ir.description or f"Runs the {workflow.ir.id} workflow."
    skill: dict[str, Any] = {
        "id": skill_id,
        "name": (text.name if text and text.name else skill_id),
        "description": (text.description if text and text.description else described),
        "tags": list(text.tags) if text else [],
    }
    if text and text.examples:
        skill["examples"] = list(text.examples)
    if text and text.input_modes:
        skill["inputModes"] = list(text.input_modes)
    if text and text.output_modes:
        skill["outputModes"] = list(text.output_modes)
    return skill
