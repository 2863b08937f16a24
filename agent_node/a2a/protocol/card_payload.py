"""What an Agent Card signature covers: the card's §8.4.1 form, before JCS.

A2A 1.0 §8.4.1: the ``signatures`` member excluded, and the card as the
protobuf ``AgentCard`` writes it to JSON: fields outside the message are
not part of it (the 0.3 fields a card may also carry, for 0.3 clients);
a field at its default is omitted (an empty string, list or object,
``false``, 0) unless it has presence (``optional``, a message, a oneof
member), which keeps it as written, or is REQUIRED, which keeps it always.
:data:`SCHEMA` is that message tree, written from the spec's ``a2a.proto``.

The official verifiers depart from the spec in one way: after dropping the
defaults, a2a-sdk 1.x and ``@a2a-js/sdk`` 1.x also drop *every* empty string,
list and object, recursively, REQUIRED or not (a skill's ``tags: []``, a
security requirement ``{"schemes": {"mtls": {"list": []}}}``); the TCK's
validator drops required defaults too. A card with no empty string, list or
object anywhere in its 1.0 form has one form under all of them:
:func:`spec_disagreements` names the places where they would differ, and
the node's card avoids them. :func:`verifier_forms` gives every form a
signer may have signed, for checking peers' signatures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SCHEMA", "signed_form", "spec_disagreements", "verifier_forms"]

#: Field kinds: ``s`` a string and ``b`` a bool without presence, ``o`` a
#: scalar with presence, ``S`` a repeated string, ``M:T`` a message,
#: ``L:T`` a repeated message, ``D:T`` a map of messages, ``d`` a map of
#: strings, ``j`` a ``google.protobuf.Struct`` (any JSON object); ``!``
#: marks a REQUIRED field. Keys are the ProtoJSON (lowerCamel) names.
#: ``AgentCard.signatures`` is left out: it is never signed.
SCHEMA: dict[str, dict[str, str]] = {
    "AgentCard": {
        "name": "s!",
        "description": "s!",
        "supportedInterfaces": "L:AgentInterface!",
        "provider": "M:AgentProvider",
        "version": "s!",
        "documentationUrl": "o",
        "capabilities": "M:AgentCapabilities!",
        "securitySchemes": "D:SecurityScheme",
        "securityRequirements": "L:SecurityRequirement",
        "defaultInputModes": "S!",
        "defaultOutputModes": "S!",
        "skills": "L:AgentSkill!",
        "iconUrl": "o",
    },
    "AgentInterface": {
        "url": "s!",
        "protocolBinding": "s!",
        "tenant": "s",
        "protocolVersion": "s!",
    },
    "AgentProvider": {"url": "s!", "organization": "s!"},
    "AgentCapabilities": {
        "streaming": "o",
        "pushNotifications": "o",
        "extensions": "L:AgentExtension",
        "extendedAgentCard": "o",
    },
    "AgentExtension": {"uri": "s", "description": "s", "required": "b", "params": "j"},
    "AgentSkill": {
        "id": "s!",
        "name": "s!",
        "description": "s!",
        "tags": "S!",
        "examples": "S",
        "inputModes": "S",
        "outputModes": "S",
        "securityRequirements": "L:SecurityRequirement",
    },
    "StringList": {"list": "S"},
    "SecurityRequirement": {"schemes": "D:StringList"},
    "SecurityScheme": {
        "apiKeySecurityScheme": "M:APIKeySecurityScheme",
        "httpAuthSecurityScheme": "M:HTTPAuthSecurityScheme",
        "oauth2SecurityScheme": "M:OAuth2SecurityScheme",
        "openIdConnectSecurityScheme": "M:OpenIdConnectSecurityScheme",
        "mtlsSecurityScheme": "M:MutualTlsSecurityScheme",
    },
    "APIKeySecurityScheme": {"description": "s", "location": "s!", "name": "s!"},
    "HTTPAuthSecurityScheme": {"description": "s", "scheme": "s!", "bearerFormat": "s"},
    "OAuth2SecurityScheme": {
        "description": "s",
        "flows": "M:OAuthFlows!",
        "oauth2MetadataUrl": "s",
    },
    "OpenIdConnectSecurityScheme": {"description": "s", "openIdConnectUrl": "s!"},
    "MutualTlsSecurityScheme": {"description": "s"},
    "OAuthFlows": {
        "authorizationCode": "M:AuthorizationCodeOAuthFlow",
        "clientCredentials": "M:ClientCredentialsOAuthFlow",
        "implicit": "M:ImplicitOAuthFlow",
        "password": "M:PasswordOAuthFlow",
        "deviceCode": "M:DeviceCodeOAuthFlow",
    },
    "AuthorizationCodeOAuthFlow": {
        "authorizationUrl": "s!",
        "tokenUrl": "s!",
        "refreshUrl": "s",
        "scopes": "d!",
        "pkceRequired": "b",
    },
    "ClientCredentialsOAuthFlow": {"tokenUrl": "s!", "refreshUrl": "s", "scopes": "d!"},
    "ImplicitOAuthFlow": {"authorizationUrl": "s", "refreshUrl": "s", "scopes": "d"},
    "PasswordOAuthFlow": {"tokenUrl": "s", "refreshUrl": "s", "scopes": "d"},
    "DeviceCodeOAuthFlow": {
        "deviceAuthorizationUrl": "s!",
        "tokenUrl": "s!",
        "refreshUrl": "s",
        "scopes": "d!",
    },
}

_OMIT = object()


def signed_form(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card as §8.4.1 has it signed: the 1.0 ``AgentCard`` fields only,
    defaults dropped as the spec says, ``signatures`` excluded."""
    return _message(card, "AgentCard", keep_required=True)


def verifier_forms(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each distinct form a signer may have signed ``card`` in: the spec's
    (:func:`signed_form`); the official SDKs' (required defaults and every
    empty value dropped too); and the card as served, ``signatures``
    excluded (what agent-node signed before it followed §8.4.1)."""
    forms = [
        signed_form(card),
        _drop_empty(_message(card, "AgentCard", keep_required=False)) or {},
        {key: value for key, value in card.items() if key != "signatures"},
    ]
    return [form for index, form in enumerate(forms) if form not in forms[:index]]


def spec_disagreements(card: Mapping[str, Any]) -> list[str]:
    """Where the spec's form of ``card`` holds an empty string, list or object:
    the official SDKs' verifiers drop those, so a signature over the spec's
    form does not verify there. Paths as ``skills[0].tags``."""
    found: list[str] = []
    _empties(signed_form(card), "", found)
    return found


def _message(value: Mapping[str, Any], message: str, *, keep_required: bool) -> dict[str, Any]:
    fields = SCHEMA[message]
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in fields else _camel(key)
        kind = fields.get(name)
        if kind is None:  # not a field of the message (signatures: not in SCHEMA)
            continue
        kept = _field(item, kind, keep_required=keep_required)
        if kept is not _OMIT:
            out[name] = kept
    return out


def _field(value: Any, kind: str, *, keep_required: bool) -> Any:
    required = kind.endswith("!")
    code, _, message = kind.rstrip("!").partition(":")
    if code == "M":  # a message has presence: kept, stripped inside
        return _nested(value, message, keep_required=keep_required)
    if not (required and keep_required) and _is_default(value, code):
        return _OMIT
    if code == "L" and isinstance(value, list):
        return [_nested(item, message, keep_required=keep_required) for item in value]
    if code == "D" and isinstance(value, dict):
        return {k: _nested(v, message, keep_required=keep_required) for k, v in value.items()}
    return value


def _is_default(value: Any, code: str) -> bool:
    if code == "s":
        return isinstance(value, str) and not value
    if code == "b":
        return value is False
    return code in "SLDd" and isinstance(value, list | dict) and not value


def _nested(value: Any, message: str, *, keep_required: bool) -> Any:
    """A message's JSON stripped; anything else (a card that is wrong here) as it is."""
    if not isinstance(value, Mapping):
        return value
    return _message(value, message, keep_required=keep_required)


def _drop_empty(value: Any) -> Any:
    """What the SDKs do after ``MessageToDict``: drop null, empty strings, lists
    and objects, recursively (an object left empty is dropped in turn)."""
    if isinstance(value, dict):
        kept = {k: v for k, v in ((k, _drop_empty(v)) for k, v in value.items()) if v is not None}
        return kept or None
    if isinstance(value, list):
        items = [v for v in (_drop_empty(item) for item in value) if v is not None]
        return items or None
    return None if value == "" else value


def _empties(value: Any, path: str, found: list[str]) -> None:
    if value == "" or value == [] or value == {}:
        found.append(path or "(the card)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _empties(item, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _empties(item, f"{path}[{index}]", found)


def _camel(name: str) -> str:
    """ProtoJSON readers take a field's proto name too (``icon_url``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
