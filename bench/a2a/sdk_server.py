"""The a2a-sdk (1.x) peer of the A2A SendMessage benchmark: an echo agent.

    python bench/a2a/sdk_server.py --port P --store memory
    python bench/a2a/sdk_server.py --port P --store sqlite+aiosqlite:////abs/path/sdk.db
    python bench/a2a/sdk_server.py --port P --store memory --tls-dir CERTS   # mutual TLS
    python bench/a2a/sdk_server.py --port P --grpc-port G ...   # its gRPC binding too

Built from the SDK's 1.x server pieces (1.x has no ``A2AStarletteApplication``):
an ``AgentExecutor`` behind ``DefaultRequestHandler`` (``DefaultRequestHandlerV2``
in 1.3), the card and JSON-RPC routes from ``a2a.server.routes`` in a Starlette
app, served by uvicorn with the same settings as agent-node
(``log_level="warning"``, default HTTP/loop implementations). The task store is
``InMemoryTaskStore`` or the SDK's ``DatabaseTaskStore`` on a SQLAlchemy async
engine, left with the SDK's and SQLite's defaults (no pragmas: rollback
journal, ``synchronous=FULL``).

The JSON-RPC endpoint is mounted at ``/a2a`` (the SDK's default is ``/``),
and the HTTP+JSON routes under it, so that the load client sends the same
bytes to every system. The SDK reads the
protocol version from the ``A2A-Version`` header like agent-node does.

``--grpc-port`` also serves the SDK's gRPC binding (its ``GrpcHandler`` over
the same request handler, on a ``grpc.aio`` server in the same loop), as
agent-node serves its own on a port of its own; with ``--tls-dir``, over
mutual TLS with the same certificates (client certificate required).

``--tls-dir`` serves HTTPS with the benchmark's certificates (``mtls.py``):
the same ``server_context`` agent-node serves with, client certificates
required. The HTTP implementation stays uvicorn's ``auto``, i.e. httptools
(installed in the venv), which is also what agent-node runs over TLS.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import mtls  # bench/a2a/mtls.py: this script's directory is on sys.path
import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import DatabaseTaskStore, InMemoryTaskStore, TaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette

RPC_PATH = "/a2a"


class EchoExecutor(AgentExecutor):
    """Completes every task at once with one artifact: the message's text."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None  # SendMessage always carries one
        # The v2 handler wants the Task enqueued before any status update.
        task = context.current_task or new_task_from_user_message(message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.add_artifact([new_text_part(get_message_text(message))], name="result")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError("echo tasks complete at once")


def _card(url: str) -> AgentCard:
    return AgentCard(
        name="a2a-sdk echo",
        description="Replies with the text it was sent (benchmark peer).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="echo", name="Echo", description="Replies with its input.", tags=["bench"]
            )
        ],
    )


async def _store(url: str) -> tuple[TaskStore, Any]:
    """The task store for ``url`` and the engine to dispose of (or None)."""
    if url == "memory":
        return InMemoryTaskStore(), None
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    store = DatabaseTaskStore(engine)
    await store.initialize()  # create the table before the first request
    return store, engine


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", default="memory", help="memory | a sqlite+aiosqlite URL")
    parser.add_argument("--tls-dir", type=Path, help="serve mutual TLS with mtls.py's files here")
    parser.add_argument("--grpc-port", type=int, help="also serve gRPC on this port")
    args = parser.parse_args()

    scheme = "https" if args.tls_dir else "http"
    card = _card(f"{scheme}://{args.host}:{args.port}{RPC_PATH}")
    store, engine = await _store(args.store)
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(), task_store=store, agent_card=card
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(card),
            *create_jsonrpc_routes(handler, RPC_PATH),
            # HTTP+JSON under the same path, as agent-node serves it.
            *create_rest_routes(handler, path_prefix=RPC_PATH),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            lifespan="off",
            **mtls.uvicorn_options(args.tls_dir),
        )
    )
    grpc_server = await _grpc(handler, args) if args.grpc_port else None
    try:
        await server.serve()
    finally:
        if grpc_server is not None:
            await grpc_server.stop(1)
        if engine is not None:
            await engine.dispose()


async def _grpc(handler: DefaultRequestHandler, args: argparse.Namespace) -> Any:
    """The SDK's gRPC servicer over ``handler``, started on ``--grpc-port``."""
    import grpc
    from a2a.server.request_handlers import GrpcHandler
    from a2a.types import a2a_pb2_grpc

    server = grpc.aio.server()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)
    address = f"{args.host}:{args.grpc_port}"
    if args.tls_dir is None:
        server.add_insecure_port(address)
    else:
        certs = args.tls_dir
        credentials = grpc.ssl_server_credentials(
            [
                (
                    (certs / f"{mtls.SERVER}-key.pem").read_bytes(),
                    (certs / f"{mtls.SERVER}.pem").read_bytes(),
                )
            ],
            root_certificates=(certs / mtls.CA).read_bytes(),
            require_client_auth=True,
        )
        server.add_secure_port(address, credentials)
    await server.start()
    return server


if __name__ == "__main__":
    asyncio.run(main())
