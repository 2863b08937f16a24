"""A peer agent built with the official a2a-sdk 0.3.x server, over mutual TLS.

Runs in a virtual environment of its own (a2a-sdk 0.3 with its HTTP server
extras, and uvicorn; it cannot share one with the 1.x SDK), started by
``test_delegate_interop.py``::

    python sdk03_peer_server.py --port P --certs DIR --name sdk03 --log FILE [--push]

The 0.3 twin of ``sdk_peer_server.py`` (what they share is in
``peer_common.py``): an ``A2AStarletteApplication`` with the SDK's
``DefaultRequestHandler`` and ``InMemoryTaskStore``, a 0.3 card (``url``,
``protocolVersion: 0.3.0``, ``preferredTransport: JSONRPC``, no
``supportedInterfaces``), served by uvicorn with its ordinary TLS options
(``DIR/NAME.pem``, client certificates required, trust ``DIR/ca.pem``). The
judge works a moment (``--delay``), then completes the task with one
artifact: a data part ``{"verdict", "judge"}`` and a text part.

``--push`` declares push notifications and wires the SDK's
``InMemoryPushNotificationConfigStore`` and ``BasePushNotificationSender``,
which deliver them with a client certificate (``DIR/NAME.pem``). ``--log``
receives one JSON line per request the judge executed and per push
delivered (URL, headers, body, the receiver's HTTP status).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentSkill,
    DataPart,
    Part,
    Task,
    TaskState,
    TaskStatus,
    TextPart,
)
from peer_common import Log, arguments, logged_headers, push_client, server_options, verdict


class JudgeExecutor(AgentExecutor):
    """Judges the ``name`` of the message's data part, after ``delay`` seconds."""

    def __init__(self, log: Log, delay: float) -> None:
        self.log = log
        self.delay = delay

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        if message is None or context.task_id is None or context.context_id is None:
            raise ValueError("message/send without a message")
        data: dict[str, Any] = {}
        for part in message.parts:
            if isinstance(part.root, DataPart):
                data.update(part.root.data)
        config = context.configuration
        push = config.push_notification_config if config is not None else None
        call = context.call_context
        headers = call.state.get("headers", {}) if call is not None else {}
        self.log.write(
            event="execute",
            task_id=context.task_id,
            message_id=message.message_id,
            data=data,
            metadata=message.metadata or {},
            blocking=config.blocking if config is not None else None,
            push=push.model_dump(mode="json", exclude_none=True) if push is not None else None,
            headers=logged_headers(headers),
        )
        task = context.current_task or Task(
            id=context.task_id,
            context_id=context.context_id,
            status=TaskStatus(state=TaskState.submitted),
            history=[message],
        )
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await asyncio.sleep(self.delay)
        judged, note = verdict(data)
        parts = [Part(root=DataPart(data=judged)), Part(root=TextPart(text=note))]
        await updater.add_artifact(parts, name="verdict")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        if context.task_id is None or context.context_id is None:
            raise ValueError("tasks/cancel without a task")
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def card(url: str, push: bool) -> AgentCard:
    return AgentCard(
        name="a2a-sdk 0.3 judge",
        description="Judges names (an interop peer built with the a2a-sdk 0.3 server).",
        version="1.0.0",
        url=url,
        protocol_version="0.3.0",
        preferred_transport="JSONRPC",
        capabilities=AgentCapabilities(streaming=False, push_notifications=push),
        default_input_modes=["application/json"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(id="judge", name="Judge", description="Judges a name.", tags=["interop"])
        ],
    )


async def main() -> None:
    args = arguments(__doc__).parse_args()

    log = Log(args.log)
    agent_card = card(f"https://127.0.0.1:{args.port}/", args.push)
    pushes: dict[str, Any] = {}
    http = push_client(args.certs, args.name, log)
    if args.push:
        store = InMemoryPushNotificationConfigStore()
        pushes = {
            "push_config_store": store,
            "push_sender": BasePushNotificationSender(http, store),
        }
    handler = DefaultRequestHandler(
        agent_executor=JudgeExecutor(log, args.delay), task_store=InMemoryTaskStore(), **pushes
    )
    app = A2AStarletteApplication(agent_card=agent_card, http_handler=handler).build()
    try:
        await uvicorn.Server(uvicorn.Config(app, **server_options(args))).serve()
    finally:
        await http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
