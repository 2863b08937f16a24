"""What verifying a bearer JWT costs our node, per request, with the issuer's key cached.

    .venv/bin/python bench/auth/jwt_bench.py [--tokens 2000]

For each algorithm a node may accept (RS256, ES256, EdDSA): ``--tokens``
distinct tokens (each verified for the first time: signature, claims,
identity), then one token presented again and again (what a client reusing
its token costs: the node remembers a verified token until it expires). The
JWK Set is a file read once, as a node with ``jwks_file`` reads it. CPU time
of this process, per token, in microseconds, and the bare signature check
of ``cryptography`` (OpenSSL) for each algorithm: the floor under the first
use. The issue's target: < 100 µs per request with a cached key
(``bench/a2a/send_bench.py --systems ours-mtls,ours-jwt`` measures the same
over the wire).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent_node.security.jwt_auth import JwtVerifier

ISSUER, AUDIENCE = "https://issuer.bench", "agent-node"


def keys() -> dict[str, Any]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def jwk_of(alg: str, key: Any) -> dict[str, Any]:
    kind = {"RS256": jwt.algorithms.RSAAlgorithm, "ES256": jwt.algorithms.ECAlgorithm}
    if alg == "EdDSA":
        found: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        found = kind[alg].to_jwk(key.public_key(), as_dict=True)
    return {**found, "kid": alg}


async def measure(alg: str, key: Any, folder: Path, count: int) -> dict[str, float]:
    jwks = folder / f"{alg}.json"
    jwks.write_text(json.dumps({"keys": [jwk_of(alg, key)]}))
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, algorithms=[alg], jwks_file=jwks)
    now = time.time()
    tokens = [
        jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": f"caller-{i}", "exp": now + 600},
            key,
            algorithm=alg,
            headers={"kid": alg},
        )
        for i in range(count)
    ]
    await verifier.identity_of(tokens[0])  # the key set read once
    started = time.process_time()
    for token in tokens[1:]:
        await verifier.identity_of(token)
    fresh = (time.process_time() - started) / (count - 1) * 1e6
    started = time.process_time()
    for _ in range(count):
        await verifier.identity_of(tokens[0])
    again = (time.process_time() - started) / count * 1e6
    signing_input, _, signature = tokens[1].rpartition(".")
    raw = jwt.utils.base64url_decode(signature)
    algorithm = jwt.get_algorithm_by_name(alg)
    public = key.public_key()
    started = time.process_time()
    for _ in range(count):
        algorithm.verify(signing_input.encode(), public, raw)
    floor = (time.process_time() - started) / count * 1e6
    return {"first_use_us": fresh, "reused_us": again, "signature_only_us": floor}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = {
            alg: await measure(alg, key, Path(scratch), args.tokens) for alg, key in keys().items()
        }
    print(
        f"{'alg':6}  {'first use µs/token':>18}  {'of it the signature':>19}"
        f"  {'reused µs/token':>15}  target < 100 µs (first use)"
    )
    for alg, found in results.items():
        ok = "PASS" if found["first_use_us"] < 100 else "FAIL"
        print(
            f"{alg:6}  {found['first_use_us']:18.1f}  {found['signature_only_us']:19.1f}"
            f"  {found['reused_us']:15.1f}  {ok}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
