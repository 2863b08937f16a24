"""Calibration row of the A2A SendMessage benchmark: a bare Starlette JSON endpoint.

    python bench/a2a/starlette_server.py --port P [--tls-dir CERTS]

``POST /a2a`` reads the JSON body and answers a small JSON object; ``GET
/.well-known/agent-card.json`` answers a stub so the orchestrator's readiness
poll works the same for every system. Same uvicorn settings as the others.
What it costs per request is the floor under any A2A server built on
Starlette + uvicorn (HTTP parsing, routing, one JSON decode and encode);
with ``--tls-dir`` (mutual TLS, ``mtls.py``), that floor plus TLS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mtls  # bench/a2a/mtls.py: this script's directory is on sys.path
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def rpc(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "result": {"ok": True}})


async def card(request: Request) -> JSONResponse:
    return JSONResponse({"name": "starlette calibration"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", type=Path, help="serve mutual TLS with mtls.py's files here")
    args = parser.parse_args()
    app = Starlette(
        routes=[
            Route("/a2a", rpc, methods=["POST"]),
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
        ]
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="off",
        **mtls.uvicorn_options(args.tls_dir),
    )


if __name__ == "__main__":
    main()
