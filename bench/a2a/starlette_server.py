"""Calibration row of the A2A SendMessage benchmark: a bare Starlette JSON endpoint.

    python bench/a2a/starlette_server.py --port P [--tls-dir CERTS]

``POST /a2a`` reads the JSON body and answers a small JSON object; ``GET
/.well-known/agent-card.json`` answers a stub so the orchestrator's readiness
poll works the same for every system. Same uvicorn settings as the others.
What it costs per request is the floor under any A2A server built on
Starlette + uvicorn (HTTP parsing, routing, one JSON decode and encode);
with ``--tls-dir`` (mutual TLS, ``mtls.py``), that floor plus TLS.

``--grpc-port`` also serves ``lf.a2a.v1.A2AService/SendMessage`` on a bare
``grpc.aio`` server in the same event loop (the ``starlette-grpc`` row): it
answers a completed task echoing the message's text, built directly as
protobuf, so what it costs is the floor under any A2A gRPC server built on
grpcio's asyncio server (HTTP/2, the call's life cycle, protobuf parsing).
With ``--tls-dir`` it asks for a client certificate, as ours does.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

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
    parser.add_argument("--grpc-port", type=int, help="serve a bare gRPC SendMessage here too")
    args = parser.parse_args()
    app = Starlette(
        routes=[
            Route("/a2a", rpc, methods=["POST"]),
            Route("/.well-known/agent-card.json", card, methods=["GET"]),
        ]
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="off",
        **mtls.uvicorn_options(args.tls_dir),
    )
    asyncio.run(serve(uvicorn.Server(config), args.host, args.grpc_port, args.tls_dir))


async def serve(
    http: uvicorn.Server, host: str, grpc_port: int | None, tls_dir: Path | None
) -> None:
    if grpc_port is None:
        await http.serve()
        return
    import grpc

    from agent_node.a2a.protocol.grpc.messages import SERVICE, message_class

    request_class = message_class("SendMessageRequest")
    reply_class = message_class("SendMessageResponse")

    async def send(request: Any, _context: Any) -> Any:
        reply = reply_class()
        reply.task.id = request.message.message_id
        reply.task.status.state = 3  # TASK_STATE_COMPLETED
        reply.task.artifacts.add().parts.add().text = request.message.parts[0].text
        return reply

    method = grpc.unary_unary_rpc_method_handler(
        send,
        request_deserializer=request_class.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"SendMessage": method}),)
    )
    if tls_dir is None:
        server.add_insecure_port(f"{host}:{grpc_port}")
    else:
        credentials = grpc.ssl_server_credentials(
            [
                (
                    (tls_dir / f"{mtls.SERVER}-key.pem").read_bytes(),
                    (tls_dir / f"{mtls.SERVER}.pem").read_bytes(),
                )
            ],
            root_certificates=(tls_dir / mtls.CA).read_bytes(),
            require_client_auth=True,
        )
        server.add_secure_port(f"{host}:{grpc_port}", credentials)
    await server.start()
    try:
        await http.serve()
    finally:
        await server.stop(1)


if __name__ == "__main__":
    main()
