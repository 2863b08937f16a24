"""A2A 0.3 <-> 1.0 conversion of the Agent Card (plain JSON).

A 1.0 card names its endpoints in ``supportedInterfaces`` and its security as
``{schemes: {name: {list: scopes}}}`` with one wrapper key per scheme kind; a
0.3 card has a top-level ``url``, ``protocolVersion``,
``preferredTransport``, ``additionalInterfaces``, ``security: [{name: scopes}]``,
``supportsAuthenticatedExtendedCard`` and flat schemes with a ``type``.

One card can carry both: :func:`card_v03_fields` gives the 0.3 fields to
merge into a 1.0 card, and for each security scheme an object holding both
shapes (``{"mtlsSecurityScheme": {}, "type": "mutualTLS"}``): each generation
of reader ignores the other's keys. The 1.0 TCK refuses such a card
(CARD-STRUCT-001), hence a setting decides whether the node merges them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["card_from_v03", "card_to_v03", "card_v03_fields", "v03_url"]

JSON = dict[str, Any]

V03_PROTOCOL_VERSION = "0.3.0"

_SCHEME_TYPES = {
    "apiKeySecurityScheme": "apiKey",
    "httpAuthSecurityScheme": "http",
    "oauth2SecurityScheme": "oauth2",
    "openIdConnectSecurityScheme": "openIdConnect",
    "mtlsSecurityScheme": "mutualTLS",
}
_SCHEME_KEYS = {v: k for k, v in _SCHEME_TYPES.items()}
_FLOWS = ("authorizationCode", "clientCredentials", "deviceCode", "implicit", "password")
_V03_ONLY = (
    "url",
    "protocolVersion",
    "preferredTransport",
    "additionalInterfaces",
    "security",
    "supportsAuthenticatedExtendedCard",
)


def _scheme_to_v03(scheme: JSON) -> JSON:
    for key, kind in _SCHEME_TYPES.items():
        if isinstance(scheme.get(key), dict):
            body = dict(scheme[key])
            if "location" in body:  # 0.3 used OpenAPI's name
                body["in"] = body.pop("location")
            return {"type": kind, **body}
    return {}


def _scheme_from_v03(scheme: JSON) -> JSON:
    for key in _SCHEME_TYPES:  # a dual-shape scheme already has its 1.0 form
        if key in scheme:
            return {key: scheme[key]}
    body = {k: v for k, v in scheme.items() if k != "type"}
    if "in" in body:
        body["location"] = body.pop("in")
    if isinstance(body.get("flows"), dict):  # 1.0 has one flow; keep the first
        flow = next((f for f in _FLOWS if f in body["flows"]), None)
        body["flows"] = {flow: body["flows"][flow]} if flow else {}
    return {_SCHEME_KEYS.get(scheme.get("type", ""), "unknownSecurityScheme"): body}


def _requirements_to_v03(requirements: list[JSON]) -> list[JSON]:
    return [
        {name: scopes.get("list", []) for name, scopes in req.get("schemes", {}).items()}
        for req in requirements
    ]


def _requirements_from_v03(security: list[JSON]) -> list[JSON]:
    return [{"schemes": {name: {"list": scopes} for name, scopes in s.items()}} for s in security]


def _skill_to_v03(skill: JSON, *, keep_v1: bool) -> JSON:
    if "securityRequirements" not in skill:
        return dict(skill)
    out = {**skill, "security": _requirements_to_v03(skill["securityRequirements"])}
    if not keep_v1:
        del out["securityRequirements"]
    return out


def v03_url(card: JSON) -> str:
    """The URL a 0.3 client should use: the first 0.3 JSON-RPC interface, else the first one."""
    interfaces = card.get("supportedInterfaces") or [{}]
    for interface in interfaces:
        if str(interface.get("protocolVersion", "")).startswith("0.3"):
            return str(interface.get("url", ""))
    return str(interfaces[0].get("url", ""))


def card_v03_fields(card: JSON, url: str) -> JSON:
    """The 0.3 fields to merge into the 1.0 ``card`` served at ``url`` (a JSON-RPC endpoint).

    ``additionalInterfaces`` lists the card's 0.3 interfaces (``url`` first);
    ``securitySchemes`` and ``skills`` come back in both shapes when the card
    has security to express.
    """
    interfaces = [{"url": url, "transport": "JSONRPC"}]
    for interface in card.get("supportedInterfaces", []):
        entry = {"url": interface.get("url"), "transport": interface.get("protocolBinding")}
        if str(interface.get("protocolVersion", "")).startswith("0.3") and entry not in interfaces:
            interfaces.append(entry)
    capabilities = card.get("capabilities") or {}
    fields: JSON = {
        "url": url,
        "protocolVersion": V03_PROTOCOL_VERSION,
        "preferredTransport": "JSONRPC",
        "additionalInterfaces": interfaces,
        "supportsAuthenticatedExtendedCard": bool(capabilities.get("extendedAgentCard")),
    }
    if "securityRequirements" in card:
        fields["security"] = _requirements_to_v03(card["securityRequirements"])
    if "securitySchemes" in card:
        fields["securitySchemes"] = {
            name: {**scheme, **_scheme_to_v03(scheme)}
            for name, scheme in card["securitySchemes"].items()
        }
    if any("securityRequirements" in skill for skill in card.get("skills", [])):
        fields["skills"] = [_skill_to_v03(s, keep_v1=True) for s in card["skills"]]
    return fields


def card_to_v03(card: JSON, url: str) -> JSON:
    """The 1.0 ``card`` as a pure 0.3 card served at ``url``."""
    out = {
        k: v for k, v in card.items() if k not in ("supportedInterfaces", "securityRequirements")
    }
    out |= card_v03_fields(card, url)
    if "capabilities" in card:
        out["capabilities"] = {
            k: v for k, v in card["capabilities"].items() if k != "extendedAgentCard"
        }
    if "securitySchemes" in card:
        out["securitySchemes"] = {n: _scheme_to_v03(s) for n, s in card["securitySchemes"].items()}
    if "skills" in card:
        out["skills"] = [_skill_to_v03(s, keep_v1=False) for s in card["skills"]]
    return out


def card_from_v03(card: JSON) -> JSON:
    """A 0.3 card as a 1.0 card; its interfaces are declared as ``protocolVersion`` 0.3."""
    out = {k: v for k, v in card.items() if k not in _V03_ONLY}
    version = ".".join(str(card.get("protocolVersion", V03_PROTOCOL_VERSION)).split(".")[:2])
    interfaces: list[JSON] = []
    main = {"url": card.get("url"), "transport": card.get("preferredTransport", "JSONRPC")}
    for entry in [main, *card.get("additionalInterfaces", [])]:
        interface = {
            "url": entry.get("url"),
            "protocolBinding": entry.get("transport"),
            "protocolVersion": version,
        }
        if interface not in interfaces:
            interfaces.append(interface)
    out["supportedInterfaces"] = interfaces
    capabilities = {k: v for k, v in (card.get("capabilities") or {}).items()}
    capabilities.pop("stateTransitionHistory", None)
    if card.get("supportsAuthenticatedExtendedCard"):
        capabilities["extendedAgentCard"] = True
    out["capabilities"] = capabilities
    if "security" in card:
        out["securityRequirements"] = _requirements_from_v03(card["security"])
    if "securitySchemes" in card:
        out["securitySchemes"] = {
            n: _scheme_from_v03(s) for n, s in card["securitySchemes"].items()
        }
    if "skills" in card:
        out["skills"] = [_skill_from_v03(s) for s in card["skills"]]
    return out


def _skill_from_v03(skill: JSON) -> JSON:
    out = {k: v for k, v in skill.items() if k != "security"}
    if "security" in skill:
        out["securityRequirements"] = _requirements_from_v03(skill["security"])
    return out
