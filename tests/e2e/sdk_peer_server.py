"""A peer agent built with the official a2a-sdk 1.x server, over mutual TLS.

Started by ``test_delegate_interop.py`` as a real process, so that a node's
``delegate`` step is proven against an A2A server that is not ours::

    python sdk_peer_server.py --port P --certs DIR --name sdk --log FILE [--push]

It serves the SDK's own card and JSON-RPC routes with uvicorn's ordinary TLS
options: ``DIR/NAME.pem`` as its certificate, client certificates required
and checked against ``DIR/ca.pem``. Its agent, the judge, works a moment
(``--delay``), then completes the task with one artifact: a data part
``{"verdict", "judge"}`` and a text part.

With ``--push`` its card declares push notifications and the SDK's push
machinery (``InMemoryPushNotificationConfigStore``,
``BasePushNotificationSender``) delivers them with a client certificate
(``DIR/NAME.pem`` again). ``--log`` receives one JSON line per request the
judge executed (what the caller sent) and per push delivered (URL, headers,
body, the receiver's HTTP status), for the test to check.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from a2a.helpers import get_data_parts, new_data_part, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Task,
    TaskState,
    TaskStatus,
)
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

RPC_PATH = "/"  # the SDK's default
JUDGE = f"a2a-sdk {importlib.metadata.version('a2a-sdk')}"


class Log:
    """Appends one JSON object per line to a file (the test reads it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **entry: Any) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(entry) + "\n")


class JudgeExecutor(AgentExecutor):
    """Judges the ``name`` of the message's data part, after ``delay`` seconds."""

    def __init__(self, log: Log, delay: float) -> None:
        self.log = log
        self.delay = delay

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        if message is None or context.task_id is None or context.context_id is None:
            raise ValueError("SendMessage without a message")
        data = {k: v for d in get_data_parts(message.parts) for k, v in d.items()}
        config = context.configuration
        push = config.task_push_notification_config if config is not None else None
        headers = context.call_context.state.get("headers", {})
        self.log.write(
            event="execute",
            task_id=context.task_id,
            message_id=message.message_id,
            data=data,
            metadata=MessageToDict(message.metadata),
            return_immediately=bool(config and config.return_immediately),
            push=MessageToDict(push) if push is not None and push.url else None,
            headers={k: headers.get(k) for k in ("idempotency-key", "a2a-version")},
        )
        task = context.current_task or Task(
            id=context.task_id,
            context_id=context.context_id,
            status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
            history=[message],
        )
        await event_queue.enqueue_event(task)  # the v2 handler wants the Task first
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await asyncio.sleep(self.delay)
        name = str(data.get("name", ""))
        verdict = f"{name} has {sum(c.isalpha() for c in name)} letters"
        parts = [
            new_data_part({"verdict": verdict, "judge": JUDGE}),
            new_text_part(f"judged by {JUDGE}"),
        ]
        await updater.add_artifact(parts, name="verdict")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        if context.task_id is None or context.context_id is None:
            raise ValueError("CancelTask without a task")
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def card(url: str, push: bool, stream: bool = False) -> AgentCard:
    return AgentCard(
        name="a2a-sdk judge",
        description="Judges names (an interop peer built with the a2a-sdk 1.x server).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=stream, push_notifications=push),
        default_input_modes=["application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(id="judge", name="Judge", description="Judges a name.", tags=["interop"])
        ],
    )


def client_context(certs: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs / "ca.pem")
    context.load_cert_chain(certs / f"{name}.pem", certs / f"{name}-key.pem")
    return context


def push_client(certs: Path, name: str, log: Log) -> httpx.AsyncClient:
    """The client the SDK pushes with; every push it delivers is logged."""

    async def logged(response: httpx.Response) -> None:
        request = response.request
        log.write(
            event="push",
            url=str(request.url),
            headers=dict(request.headers),
            body=json.loads(request.content),
            status=response.status_code,
        )

    return httpx.AsyncClient(
        verify=client_context(certs, name), timeout=10, event_hooks={"response": [logged]}
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--push", action="store_true", help="declare and send pushes")
    parser.add_argument("--stream", action="store_true", help="declare streaming")
    args = parser.parse_args()

    log = Log(args.log)
    agent_card = card(f"https://127.0.0.1:{args.port}{RPC_PATH}", args.push, args.stream)
    pushes: dict[str, Any] = {}
    http = push_client(args.certs, args.name, log)
    if args.push:
        store = InMemoryPushNotificationConfigStore()
        pushes = {
            "push_config_store": store,
            "push_sender": BasePushNotificationSender(http, store),
        }
    handler = DefaultRequestHandler(
        agent_executor=JudgeExecutor(log, args.delay),
        task_store=InMemoryTaskStore(),
        agent_card=agent_card,
        **pushes,
    )
    app = Starlette(
        routes=[*create_agent_card_routes(agent_card), *create_jsonrpc_routes(handler, RPC_PATH)]
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=args.certs / f"{args.name}.pem",
        ssl_keyfile=args.certs / f"{args.name}-key.pem",
        ssl_ca_certs=str(args.certs / "ca.pem"),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
