"""The a2a-sdk (1.x) peer of the A2A SendMessage benchmark: an echo agent.

    python bench/a2a/sdk_server.py --port P --store memory
    python bench/a2a/sdk_server.py --port P --store sqlite+aiosqlite:////abs/path/sdk.db
    python bench/a2a/sdk_server.py --port P --store memory --tls-dir CERTS   # mutual TLS

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
    try:
        await server.serve()
    finally:
        if engine is not None:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
