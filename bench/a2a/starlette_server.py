"""Calibration row of the A2A SendMessage benchmark: a bare Starlette JSON endpoint.

    python bench/a2a/starlette_server.py --port P

``POST /a2a`` reads the JSON body and answers a small JSON object; ``GET
/.well-known/agent-card.json`` answers a stub so the orchestrator's readiness
poll works the same for every system. Same uvicorn settings as the others.
What it costs per request is the floor under any A2A server built on
Starlette + uvicorn (HTTP parsing, routing, one JSON decode and encode).
"""

from __future__ import annotations

import argparse

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
    args = parser.parse_args()
    app = Starlette(
        routes=[
            Route("/a2a", rpc, methods=["POST"]),
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
