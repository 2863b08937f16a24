"""The node's Agent Card, built from its configuration and hosted workflows.

The card source (``cards/*.yaml``) holds the words: name, description,
provider, and how each skill is described. Which skills exist, and where
the node listens, come from the node configuration; a skill with no words
in the card source takes its workflow's description. Nothing is written in
two places.

Both generations read it: the 1.0 fields, plus (a setting, on by default)
the 0.3 top-level fields that 0.3 clients need.

A node serving mutual TLS declares it: a security scheme ``mtls``
(``mtlsSecurityScheme`` in 1.0; the 0.3 fields add ``"type": "mutualTLS"``
to the same object) required by the card and by every skill, with the role
``client-certificate`` (OpenAPI's requirement of a scheme that is not OAuth
lists roles). An empty role list would be as correct, but the official
SDKs' signature verifiers drop empty lists and objects where the spec keeps
them: the card holds none, so every verifier reads it alike (a skill
without tags is tagged with its id, for the same reason; see
:mod:`agent_node.a2a.protocol.card_payload`).

Served with a strong ``ETag`` (a hash of the card's canonical JSON),
``Last-Modified`` and ``Cache-Control: max-age``, so clients can cache it
and revalidate cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from agent_node.a2a.protocol.card_models import AgentCard
from agent_node.a2a.protocol.compat_card import card_v03_fields
from agent_node.card_source import CardSource
from agent_node.config import NodeConfig
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["JWKS_PATH", "PROTOCOL_PATH", "CardDocument", "build_card", "offers_extended_card"]

#: Where the JSON-RPC endpoint lives on a node.
PROTOCOL_PATH = "/a2a"
MAX_AGE = 300
#: Where the node serves the JWK Set of its card signature's key (its ``jku``).
JWKS_PATH = "/.well-known/jwks.json"
#: The name of the mutual-TLS security scheme in a card, and the role it requires.
MTLS_SCHEME = "mtls"
MTLS_ROLE = "client-certificate"
#: The schemes of ``auth:``, as the card names them.
BEARER_SCHEME = "bearer"
API_KEY_SCHEME = "apiKey"
CALLER_ROLE = "caller"


@dataclass(frozen=True)
class CardDocument:
    """A card, serialized once: its body, ETag and Cache-Control value."""

    card: Mapping[str, Any]
    body: bytes
    etag: str
    #: When this node built the card (an HTTP date).
    last_modified: str
    cache_control: str = f"public, max-age={MAX_AGE}"

    @classmethod
    def of(cls, card: Mapping[str, Any]) -> CardDocument:
        body = json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode()
        canonical = json.dumps(card, sort_keys=True, separators=(",", ":")).encode()
        etag = f'"{hashlib.sha256(canonical).hexdigest()[:32]}"'
        return cls(card, body, etag, formatdate(usegmt=True))


def build_card(
    config: NodeConfig, workflows: Mapping[str, CompiledWorkflow], *, extended: bool = False
) -> dict[str, Any]:
    """The card of a node hosting ``workflows`` (skill id → workflow): A2A 1.0,
    plus the 0.3 fields unless ``card_v03_fields`` is off. Validated against
    the card model, so a card we serve is one a 1.0 client can parse.

    A skill configured with ``card: extended`` is left out of the public card
    and shown in the ``extended`` one (GetExtendedAgentCard); the public card
    then declares ``capabilities.extendedAgentCard``."""
    hidden = {skill.id for skill in config.skills if skill.card == "extended"}
    shown = {k: wf for k, wf in workflows.items() if extended or k not in hidden}
    source = config.card_source()
    endpoint = config.url + PROTOCOL_PATH
    card: dict[str, Any] = {
        "name": source.name,
        "description": source.description,
        "version": source.version,
        "supportedInterfaces": _interfaces(endpoint, config.listen.bindings),
        "capabilities": {"streaming": True, "pushNotifications": config.push.enabled},
        "defaultInputModes": source.default_input_modes,
        "defaultOutputModes": source.default_output_modes,
        "skills": [_skill(source, skill_id, wf) for skill_id, wf in shown.items()],
    }
    if hidden & set(workflows):
        card["capabilities"]["extendedAgentCard"] = True
    optional = {
        "provider": source.provider,
        "documentationUrl": source.documentation_url,
        "iconUrl": source.icon_url,
    }
    card.update({key: value for key, value in optional.items() if value})
    if config.grpc_target is not None:  # after 1.0's HTTP ones: clients take the first they speak
        grpc = {"url": config.grpc_target, "protocolBinding": "GRPC", "protocolVersion": "1.0"}
        interfaces = card["supportedInterfaces"]
        at = sum(1 for i in interfaces if i["protocolVersion"] == "1.0")
        interfaces.insert(at, grpc)
    _declare_security(card, config)
    AgentCard.model_validate(card)
    if config.card_v03_fields and "jsonrpc" in config.listen.bindings:  # 0.3 is JSON-RPC only
        card.update(card_v03_fields(card, endpoint))
    return card


def _interfaces(endpoint: str, bindings: Sequence[str]) -> list[dict[str, str]]:
    """The HTTP interfaces served, the preferred first: JSON-RPC 1.0,
    HTTP+JSON 1.0, then JSON-RPC 0.3 (for 0.3 clients)."""
    interfaces = []
    if "jsonrpc" in bindings:
        interfaces.append({"url": endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"})
    if "rest" in bindings:
        interfaces.append(
            {"url": endpoint, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
        )
    if "jsonrpc" in bindings:
        interfaces.append({"url": endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"})
    return interfaces


def _declare_security(card: dict[str, Any], config: NodeConfig) -> None:
    """The schemes callers may use (mutual TLS with TLS, and those of
    ``auth:``), any one of them sufficing. Each requirement names a role
    (OpenAPI's scopes of non-OAuth schemes), never an empty list: verifiers
    of signed cards disagree on empty ones."""
    schemes: dict[str, Any] = {}
    if config.tls is not None and config.auth.mtls:
        description = (
            "Mutual TLS: present a client certificate that chains to this node's trust"
            " bundle; the caller is the identity its URI SAN names."
        )
        schemes[MTLS_SCHEME] = {"mtlsSecurityScheme": {"description": description}}
    jwt = config.auth.jwt
    if jwt is not None and jwt.oidc:
        schemes[BEARER_SCHEME] = {
            "openIdConnectSecurityScheme": {
                "description": f"A bearer JWT of {jwt.issuer} (OpenID Connect).",
                "openIdConnectUrl": jwt.oidc,
            }
        }
    elif jwt is not None:
        schemes[BEARER_SCHEME] = {
            "httpAuthSecurityScheme": {
                "description": f"A bearer JWT of {jwt.issuer}, for audience {jwt.audience}.",
                "scheme": "Bearer",
                "bearerFormat": "JWT",
            }
        }
    keys = config.auth.api_keys
    if keys is not None:
        schemes[API_KEY_SCHEME] = {
            "apiKeySecurityScheme": {
                "description": "An API key this node's operator issued.",
                "location": "header",
                "name": keys.header,
            }
        }
    if not schemes:
        return
    role = {MTLS_SCHEME: MTLS_ROLE, BEARER_SCHEME: CALLER_ROLE, API_KEY_SCHEME: CALLER_ROLE}
    required = [{"schemes": {name: {"list": [role[name]]}}} for name in schemes]
    card["securitySchemes"] = schemes
    card["securityRequirements"] = required
    for skill in card["skills"]:
        skill["securityRequirements"] = required


def _skill(source: CardSource, skill_id: str, workflow: CompiledWorkflow) -> dict[str, Any]:
    text = source.skills.get(skill_id)
    described = workflow.ir.description or f"Runs the {workflow.ir.id} workflow."
    skill: dict[str, Any] = {
        "id": skill_id,
        "name": (text.name if text and text.name else skill_id),
        "description": (text.description if text and text.description else described),
        "tags": list(text.tags) if text and text.tags else [skill_id],
    }
    if text and text.examples:
        skill["examples"] = list(text.examples)
    if text and text.input_modes:
        skill["inputModes"] = list(text.input_modes)
    if text and text.output_modes:
        skill["outputModes"] = list(text.output_modes)
    return skill


def offers_extended_card(config: NodeConfig, workflows: Mapping[str, CompiledWorkflow]) -> bool:
    """Whether the node has an extended card: a skill shown only there."""
    return any(s.card == "extended" and s.id in workflows for s in config.skills)
