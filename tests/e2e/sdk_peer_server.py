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
body, the receiver's HTTP status), for the test to check. What it shares
with its 0.3 twin, ``sdk03_peer_server.py``, is in ``peer_common.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
from peer_common import Log, arguments, logged_headers, push_client, server_options, verdict
from starlette.applications import Starlette

RPC_PATH = "/"  # the SDK's default


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
            headers=logged_headers(headers),
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
        judged, note = verdict(data)
        parts = [new_data_part(judged), new_text_part(note)]
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


async def main() -> None:
    parser = arguments(__doc__)
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
    try:
        await uvicorn.Server(uvicorn.Config(app, **server_options(args))).serve()
    finally:
        await http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
