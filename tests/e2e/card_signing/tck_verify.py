"""The A2A TCK's card-signature check (CARD-SIGN-001..003), rebuilt: the TCK
is not installable offline and its 1.0-dev snapshot marks these
requirements not automatable, so this script does what its newer validator
(``tck/validators/card_signature.py``) is documented to do, on the libraries
it uses (jwcrypto, rfc8785) and the a2a.proto descriptors a2a-sdk ships.

    python tck_verify.py --url URL --certs DIR --name NAME

The canonical payload: ``signatures`` removed, then every field at its
protobuf default removed by the ``AgentCard`` descriptor (a field without
presence equal to its default; an empty repeated or map field), members
the descriptor does not know KEPT (so a card carrying the 0.3 fields does
not verify here: the TCK wants a pure 1.0 card), then RFC 8785. The key:
the JWK Set at the signature's ``jku``, by ``kid`` (the TCK's trusted-key /
``fetch_jwks`` hook; offline it would skip as inconclusive). Prints
``{"verified": bool, "errors": [...], "payload": "..."}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import rfc8785
from a2a.types import a2a_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

_OMIT = object()


def default_of(field: FieldDescriptor) -> Any:
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return ""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[0].name
    return 0


def strip(value: dict[str, Any], message: Descriptor) -> dict[str, Any]:
    fields = {f.json_name: f for f in message.fields} | {f.name: f for f in message.fields}
    kept: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        result = item if field is None else strip_field(item, field)
        if result is not _OMIT:
            kept[key] = result
    return kept


def strip_field(value: Any, field: FieldDescriptor) -> Any:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        if not isinstance(value, dict) or not value:
            return _OMIT
        inner = message.fields_by_name["value"].message_type
        return {k: maybe(v, inner) for k, v in value.items()} if inner else value
    if field.is_repeated:
        if not isinstance(value, list) or not value:
            return _OMIT
        return [maybe(v, message) for v in value] if message else value
    if message is not None:
        if not isinstance(value, dict):
            return value
        stripped = strip(value, message)
        return _OMIT if not stripped and not field.has_presence else stripped
    if not field.has_presence and value == default_of(field):
        return _OMIT
    return value


def maybe(value: Any, message: Descriptor | None) -> Any:
    return strip(value, message) if message is not None and isinstance(value, dict) else value


def header_errors(header: dict[str, Any]) -> list[str]:
    return [
        f"protected header needs a non-empty '{name}'"
        for name in ("alg", "kid")
        if not isinstance(header.get(name), str) or not header[name]
    ]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    for name in ("url", "certs", "name"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    certs = Path(args.certs)
    tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    tls.load_cert_chain(certs / f"{args.name}.pem", certs / f"{args.name}-key.pem")
    with httpx.Client(verify=tls, timeout=20) as http:
        card = http.get(f"{args.url}/.well-known/agent-card.json").json()
        payload_object = {k: v for k, v in card.items() if k != "signatures"}
        payload = rfc8785.dumps(strip(payload_object, a2a_pb2.AgentCard.DESCRIPTOR))
        errors: list[str] = []
        for index, signature in enumerate(card.get("signatures", [])):
            protected = signature["protected"]
            header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
            errors += [f"signatures[{index}]: {e}" for e in header_errors(header)]
            keys = jwk.JWKSet.from_json(http.get(header["jku"]).text)
            key = keys.get_key(header["kid"])
            if key is None:
                errors.append(f"signatures[{index}]: no key {header['kid']!r} at its jku")
                continue
            token = jws.JWS()
            try:
                token.deserialize(
                    json.dumps({"protected": protected, "signature": signature["signature"]})
                )
                token.verify(key, detached_payload=payload)
            except JWException as exc:
                errors.append(f"signatures[{index}]: did not verify ({exc})")
                continue
            return {"verified": not errors, "errors": errors, "payload": payload.decode()}
    return {"verified": False, "errors": errors or ["no signature"], "payload": payload.decode()}


if __name__ == "__main__":
    print(json.dumps(main()))
