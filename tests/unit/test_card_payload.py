"""What a card signature covers (§8.4.1): the spec's example, the forms the
official verifiers sign, and the schema against the compiled a2a.proto."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from agent_node.a2a.protocol.card_payload import (
    SCHEMA,
    signed_form,
    spec_disagreements,
    verifier_forms,
)
from agent_node.a2a.protocol.grpc.messages import PACKAGE, POOL
from agent_node.a2a.protocol.jcs import canonical

CARD: dict[str, Any] = {
    "name": "Writer",
    "description": "Writes.",
    "version": "1.0.0",
    "supportedInterfaces": [
        {"url": "https://w/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ],
    "capabilities": {"streaming": True, "pushNotifications": False},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [{"id": "write", "name": "Write", "description": "Prose.", "tags": ["text"]}],
}


def test_the_specs_example_of_default_value_removal() -> None:
    """§8.4.1's own example, to the byte: REQUIRED fields stay even when empty,
    optional booleans stay as set, an empty repeated field goes."""
    card = {
        "name": "Example Agent",
        "description": "",
        "capabilities": {"streaming": False, "pushNotifications": False, "extensions": []},
        "skills": [],
    }
    assert canonical(signed_form(card)) == (
        b'{"capabilities":{"pushNotifications":false,"streaming":false},'
        b'"description":"","name":"Example Agent","skills":[]}'
    )


def test_fields_outside_the_10_card_are_not_signed() -> None:
    v03 = {
        **CARD,
        "url": "https://w/a2a",
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "security": [{"mtls": []}],
        "securitySchemes": {"mtls": {"mtlsSecurityScheme": {"description": "m"}, "type": "x"}},
        "signatures": [{"protected": "e30", "signature": "AA"}],
    }
    assert signed_form(v03) == {
        **CARD,
        "securitySchemes": {"mtls": {"mtlsSecurityScheme": {"description": "m"}}},
    }


def test_proto_field_names_are_read_as_their_json_names() -> None:
    card = {**CARD, "default_input_modes": ["text/plain"], "icon_url": "https://w/i.png"}
    del card["defaultInputModes"]
    assert signed_form(card) == {**CARD, "iconUrl": "https://w/i.png"}


def test_the_sdks_drop_every_empty_value_where_the_spec_keeps_some() -> None:
    """An mTLS requirement with no roles, a skill with no tags: the spec
    keeps ``{"mtls": {}}`` and ``tags: []``; a2a-sdk and @a2a-js/sdk drop them."""
    skill = {**CARD["skills"][0], "tags": [], "securityRequirements": []}
    card = {
        **CARD,
        "skills": [skill],
        "securityRequirements": [{"schemes": {"mtls": {"list": []}}}],
    }
    spec, sdk, served = verifier_forms(card)
    assert spec["securityRequirements"] == [{"schemes": {"mtls": {}}}]
    assert spec["skills"][0]["tags"] == [] and "securityRequirements" not in spec["skills"][0]
    assert "securityRequirements" not in sdk and "tags" not in sdk["skills"][0]
    assert served == card
    assert sorted(spec_disagreements(card)) == [
        "securityRequirements[0].schemes.mtls",
        "skills[0].tags",
    ]
    assert spec_disagreements(CARD) == []
    assert verifier_forms(CARD) == [CARD]  # one form: every verifier agrees


@pytest.mark.parametrize("message", sorted(SCHEMA))
def test_the_schema_is_the_compiled_protos(message: str) -> None:
    """Field names, kinds and presence as protocols/a2a-1.0/a2a.proto has them
    (REQUIRED is the spec's annotation, which that file does not carry)."""
    descriptor = POOL.FindMessageTypeByName(f"{PACKAGE}.{message}")
    fields = {f.json_name: _kind(f) for f in descriptor.fields if f.name != "signatures"}
    assert {name: kind.rstrip("!") for name, kind in SCHEMA[message].items()} == fields


def _kind(field: FieldDescriptor) -> str:
    message: Descriptor | None = field.message_type
    if message is not None and message.GetOptions().map_entry:
        value = message.fields_by_name["value"]
        return "d" if value.message_type is None else f"D:{value.message_type.name}"
    if message is not None and message.full_name == "google.protobuf.Struct":
        return "j"
    if message is not None:
        return f"{'L' if field.is_repeated else 'M'}:{message.name}"
    if field.is_repeated:
        return "S"
    if field.has_presence:
        return "o"
    return "b" if field.type == FieldDescriptor.TYPE_BOOL else "s"
