"""a2a-sdk 1.x signs a card, as an a2a-sdk agent signs its own.

    python sdk_sign.py --card FILE --key KEY.pem --kid KID --jku URL

Reads a 1.0 card (JSON), parses it as a2a-sdk does and signs it with
``create_agent_card_signer`` (ES256, protected header ``{alg, kid, jku,
typ: JOSE}``, no certificate). Prints ``{"card": the signed card as the SDK
serves it, "jwks": the JWK Set of the key (PyJWT's own JWK of it)}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from a2a.client.card_resolver import parse_agent_card
from a2a.utils.signing import create_agent_card_signer
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.protobuf.json_format import MessageToDict
from jwt.algorithms import ECAlgorithm


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("card", "key", "kid", "jku"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    key = load_pem_private_key(Path(args.key).read_bytes(), password=None)
    card = parse_agent_card(json.loads(Path(args.card).read_text()))
    header = {"alg": "ES256", "kid": args.kid, "jku": args.jku, "typ": "JOSE"}
    signed = create_agent_card_signer(key, header)(card)  # type: ignore[arg-type]
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": args.kid, "use": "sig"}
    print(json.dumps({"card": MessageToDict(signed), "jwks": {"keys": [jwk]}}))


if __name__ == "__main__":
    main()
