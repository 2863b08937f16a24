"""A peer agent built with the official a2a-sdk 1.x server, over mutual TLS.

Started as a real process, so that a node's ``delegate`` step is proven
against an A2A server that is not ours::

    python sdk_peer_server.py --port P --certs DIR --name NAME --log FILE [--push] [--streaming]
        [--rest | --grpc-port G]

It serves the scenario contract of ``tests/e2e/foreign`` (the foreign-peer
matrix, ``peer_scenarios.py``) for a message with a text part, with the
SDK's own card and JSON-RPC routes (``--rest``: its HTTP+JSON routes under
``/rest`` instead, the only interface its card names; ``--grpc-port``: its
gRPC servicer, ``GrpcHandler`` on a ``grpc.aio`` server on that port with
the same certificate and client certificates required, the only interface
its card names, and no A2A over HTTP at all) and uvicorn's
ordinary TLS options:
``DIR/NAME.pem`` as its certificate, client certificates required and
checked against ``DIR/ca.pem``. A message with only a data part goes to the
judge (``test_delegate_interop.py``), which works a moment (``--delay``),
then completes the task with one artifact: a data part ``{"verdict",
"judge"}`` and a text part.

With ``--push`` its card declares push notifications and the SDK's push
machinery (``InMemoryPushNotificationConfigStore``,
``BasePushNotificationSender``) delivers them with a client certificate
(``DIR/NAME.pem`` again); ``--streaming`` declares streaming. ``--log``
receives one JSON line per request (the contract's, and the judge's
``execute``), task created and canceled, and push delivered (URL, state,
headers, body, the receiver's HTTP status). What it shares with its 0.3
twin, ``sdk03_peer_server.py``, is in ``peer_common.py`` and
``peer_scenarios.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from a2a.helpers import get_data_parts, get_text_parts, new_data_part, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
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
from peer_common import Log, arguments, logged_headers, pushing, requiring, serve, verdict
from peer_scenarios import SCENARIOS, Dialect, LogsCancels, ServesScenarios
from starlette.applications import Starlette

RPC_PATH = "/"  # the SDK's default
REST_PATH = "/rest"  # with --rest: the card offers the HTTP+JSON binding only, here


def working(context: RequestContext) -> Task:
    """The task a new request begins: WORKING, holding the message."""
    status = TaskStatus(state=TaskState.TASK_STATE_WORKING)
    status.timestamp.GetCurrentTime()
    message = context.message
    task = Task(id=context.task_id, context_id=context.context_id, status=status)
    task.history.extend([message] if message is not None else [])
    return task


DIALECT = Dialect(
    updater=TaskUpdater,
    state=lambda name: TaskState.Value("TASK_STATE_" + name.upper().replace("-", "_")),
    text_part=new_text_part,
    texts=lambda message: get_text_parts(message.parts),
    new_task=working,
    final=False,  # 1.0 has no ``final``: the state says it
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


class Handler(LogsCancels, DefaultRequestHandler):
    """The SDK's request handler, logging the tasks it cancels."""


def card(url: str, push: bool, stream: bool, binding: str = "JSONRPC") -> AgentCard:
    return AgentCard(
        name="a2a-sdk peer",
        description="The scenario contract and a judge of names (a2a-sdk 1.x server).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding=binding, protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=stream, push_notifications=push),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(id="judge", name="Judge", description="Judges a name.", tags=["interop"]),
            AgentSkill(id="scenarios", name="Scenarios", description=SCENARIOS, tags=["interop"]),
        ],
    )


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--rest", action="store_true", help="serve HTTP+JSON, not JSON-RPC")
    parser.add_argument("--grpc-port", type=int, help="serve gRPC on this port, not JSON-RPC")
    args = parser.parse_args()
    log = Log(args.log)
    base = f"https://127.0.0.1:{args.port}"
    if args.grpc_port:
        agent_card = card(f"127.0.0.1:{args.grpc_port}", args.push, args.streaming, "GRPC")
    elif args.rest:
        agent_card = card(base + REST_PATH, args.push, args.streaming, "HTTP+JSON")
    else:
        agent_card = card(base + RPC_PATH, args.push, args.streaming)
    store, sender = InMemoryPushNotificationConfigStore, BasePushNotificationSender
    async with pushing(args, log, store, sender) as pushes:
        handler = Handler(
            log,
            agent_executor=PeerExecutor(log, args.delay),
            task_store=InMemoryTaskStore(),
            agent_card=agent_card,
            **pushes,
        )
        if args.grpc_port:
            served = []
            grpc_server = await serve_grpc(handler, args)
        elif args.rest:
            served = create_rest_routes(handler, path_prefix=REST_PATH)
        else:
            served = create_jsonrpc_routes(handler, RPC_PATH)
        routes = [*create_agent_card_routes(agent_card), *served]
        try:
            await serve(requiring(Starlette(routes=routes), args, log), args)
        finally:
            if args.grpc_port:
                await grpc_server.stop(1)


async def serve_grpc(handler: DefaultRequestHandler, args: Any) -> Any:
    """The SDK's gRPC servicer over ``handler`` on ``--grpc-port``, mutual TLS
    as uvicorn's: ``DIR/NAME.pem``, client certificates checked against ``DIR/ca.pem``."""
    import grpc
    from a2a.server.request_handlers import GrpcHandler
    from a2a.types import a2a_pb2_grpc

    server = grpc.aio.server()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), server)
    certs, name = args.certs, args.name
    credentials = grpc.ssl_server_credentials(
        [((certs / f"{name}-key.pem").read_bytes(), (certs / f"{name}.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    server.add_secure_port(f"127.0.0.1:{args.grpc_port}", credentials)
    await server.start()
    return server


if __name__ == "__main__":
    asyncio.run(main())
