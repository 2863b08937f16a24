"""a2a-sdk 1.x verifies a node's card signature, the way its client does.

    python sdk_verify.py --url URL --certs DIR --name NAME

Over mutual TLS (DIR/NAME.pem, trusting DIR/ca.pem): A2ACardResolver fetches
the card with a signature verifier (``create_signature_verifier``) whose key
provider reads the JWK Set the signature's ``jku`` names (fetched first, with
the same client) and picks the key by ``kid``. Prints one JSON object:
``{"verified": true, "kid", "jku", "name"}`` or ``{"verified": false, "error"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
from a2a.client import A2ACardResolver
from a2a.utils.signing import create_signature_verifier
from jwt import PyJWKSet


def header_of(signature: dict[str, Any]) -> dict[str, Any]:
    protected = signature["protected"]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(protected + "=" * 3))
    return decoded


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    for name in ("url", "certs", "name"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    certs = Path(args.certs)
    tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    tls.load_cert_chain(certs / f"{args.name}.pem", certs / f"{args.name}-key.pem")
    async with httpx.AsyncClient(verify=tls, timeout=20) as http:
        raw = (await http.get(f"{args.url}/.well-known/agent-card.json")).json()
        header = header_of(raw["signatures"][0])
        jwks = (await http.get(header["jku"])).json()

        def key_provider(kid: str | None, jku: str | None) -> Any:
            if jku != header["jku"]:
                raise ValueError(f"unexpected jku {jku!r}")
            return PyJWKSet.from_dict(jwks)[kid]

        verifier = create_signature_verifier(key_provider, ["ES256", "ES384", "EdDSA"])
        try:
            card = await A2ACardResolver(http, args.url).get_agent_card(signature_verifier=verifier)
        except Exception as exc:  # the report says what failed
            return {"verified": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"verified": True, "kid": header["kid"], "jku": header["jku"], "name": card.name}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
