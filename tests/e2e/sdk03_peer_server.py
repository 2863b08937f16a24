"""A peer agent built with the official a2a-sdk 0.3.x server, over mutual TLS.

Runs in a virtual environment of its own (a2a-sdk 0.3 with its HTTP server
extras, and uvicorn; it cannot share one with the 1.x SDK)::

    python sdk03_peer_server.py --port P --certs DIR --name NAME --log FILE [--push] [--streaming]

The 0.3 twin of ``sdk_peer_server.py`` (what they share is in
``peer_common.py`` and ``peer_scenarios.py``): an
``A2AStarletteApplication`` with the SDK's ``DefaultRequestHandler`` and
``InMemoryTaskStore``, a 0.3 card (``url``, ``protocolVersion: 0.3.0``,
``preferredTransport: JSONRPC``, no ``supportedInterfaces``), served by
uvicorn with its ordinary TLS options (``DIR/NAME.pem``, client certificates
required, trust ``DIR/ca.pem``). A message with a text part plays the
scenario contract of ``tests/e2e/foreign``; one with only a data part goes
to the judge, which works a moment (``--delay``), then completes the task
with one artifact: a data part ``{"verdict", "judge"}`` and a text part.

``--push`` declares push notifications and wires the SDK's
``InMemoryPushNotificationConfigStore`` and ``BasePushNotificationSender``,
which deliver them with a client certificate (``DIR/NAME.pem``);
``--streaming`` declares streaming. ``--log`` receives one JSON line per
request (the contract's, and the judge's ``execute``), task created and
canceled, and push delivered (URL, state, headers, body, the receiver's
HTTP status).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.context import ServerCallContext
from a2a.server.events import Event, EventConsumer, EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.default_request_handler import TERMINAL_TASK_STATES
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
    InvalidParamsError,
    Message,
    Part,
    Task,
    TaskIdParams,
    TaskNotFoundError,
    TaskState,
    TaskStatus,
    TextPart,
)
from a2a.utils.errors import ServerError
from peer_common import Log, arguments, logged_headers, pushing, serve, verdict
from peer_scenarios import SCENARIOS, Dialect, LogsCancels, ServesScenarios


def working(context: RequestContext) -> Task:
    """The task a new request begins: WORKING, holding the message."""
    now = datetime.now(UTC).isoformat()
    message = context.message
    return Task(
        id=context.task_id,
        context_id=context.context_id,
        status=TaskStatus(state=TaskState.working, timestamp=now),
        history=[message] if message is not None else [],
    )


def texts(message: Message) -> list[str]:
    return [part.root.text for part in message.parts if isinstance(part.root, TextPart)]


DIALECT = Dialect(
    updater=TaskUpdater,
    state=TaskState,  # its values are the wire names: "input-required"
    text_part=lambda text: Part(root=TextPart(text=text)),
    texts=texts,
    new_task=working,
    final=True,  # the SDK's event queue stops at a final status
)


class PeerExecutor(ServesScenarios, AgentExecutor):
    """The scenarios for a message with text; the judge for one with data only."""

    def __init__(self, log: Log, delay: float) -> None:
        super().__init__(log, DIALECT, self.judge)
        self.log = log
        self.delay = delay

    async def judge(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Judges the ``name`` of the message's data part, after ``delay`` seconds."""
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


class Handler(LogsCancels, DefaultRequestHandler):
    """The SDK's request handler, logging the tasks it cancels; its
    ``tasks/resubscribe`` works around two bugs of a2a-sdk 0.3.26 (the
    matrix tests our node, not them):

    * it feeds a resubscription's events through a second ``TaskManager``
      while the send's own consumer still stores them, and its
      ``InMemoryTaskStore`` hands both the same ``Task`` object: every
      appended artifact chunk is stored twice (``tasks/get`` then reads
      ``chunk-1 chunk-2 chunk-2 chunk-3chunk-3``). Here the events are only
      relayed, as the SDK's stream sends them;
    * it taps a task's queue that is closed already (the send's consumer
      closes it at the turn's last event, the queue manager drops it a
      moment later): nothing ever reaches or closes that tap, and the stream
      hangs open, silent. Here a closed queue counts as gone, as a dropped
      one does in the SDK (``TaskNotFoundError``).
    """

    async def on_resubscribe_to_task(
        self, params: TaskIdParams, context: ServerCallContext | None = None
    ) -> AsyncIterator[Event]:
        task = await self.task_store.get(params.id, context)
        if task is None:
            raise ServerError(error=TaskNotFoundError())
        if task.status.state in TERMINAL_TASK_STATES:
            over = f"Task {task.id} is in terminal state: {task.status.state.value}"
            raise ServerError(error=InvalidParamsError(message=over))
        running = await self._queue_manager.get(task.id)
        if running is None or running.is_closed():
            raise ServerError(error=TaskNotFoundError())
        queue = running.tap()  # no await since the check: it is still open
        async for event in EventConsumer(queue).consume_all():
            yield event


def card(url: str, push: bool, stream: bool) -> AgentCard:
    return AgentCard(
        name="a2a-sdk 0.3 peer",
        description="The scenario contract and a judge of names (a2a-sdk 0.3 server).",
        version="1.0.0",
        url=url,
        protocol_version="0.3.0",
        preferred_transport="JSONRPC",
        capabilities=AgentCapabilities(streaming=stream, push_notifications=push),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(id="judge", name="Judge", description="Judges a name.", tags=["interop"]),
            AgentSkill(id="scenarios", name="Scenarios", description=SCENARIOS, tags=["interop"]),
        ],
    )


async def main() -> None:
    args = arguments(__doc__).parse_args()
    log = Log(args.log)
    agent_card = card(f"https://127.0.0.1:{args.port}/", args.push, args.streaming)
    store, sender = InMemoryPushNotificationConfigStore, BasePushNotificationSender
    async with pushing(args, log, store, sender) as pushes:
        executor = PeerExecutor(log, args.delay)
        handler = Handler(log, agent_executor=executor, task_store=InMemoryTaskStore(), **pushes)
        await serve(
            A2AStarletteApplication(agent_card=agent_card, http_handler=handler).build(), args
        )


if __name__ == "__main__":
    asyncio.run(main())
