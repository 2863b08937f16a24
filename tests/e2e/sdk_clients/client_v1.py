"""The a2a-sdk 1.x client against our node, every operation it offers; see
common.py for the command line and the report.

The node is the greeter example: ``greet`` completes with a data artifact for
``{"name": …}``; ``book`` (message metadata ``{"skill": "book"}``) asks when,
and completes on the answer. Requests are written as wire JSON and parsed with
the SDK's own protobuf types; results are reported as wire JSON
(``MessageToDict``), so the test reads what the SDK understood.

``--dialect 1.0`` (the default) hands the client the card with only its A2A
1.0 JSON-RPC interface; ``--dialect 0.3`` only the 0.3 interface, so the
SDK's compatibility transport speaks A2A 0.3 JSON-RPC to the node (and
converts the answers back to 1.x types); ``--dialect rest`` only the
HTTP+JSON interface, so its REST transport is used; ``--dialect grpc`` only
the gRPC interface (``host:port``), reached over a mutual-TLS channel by its
gRPC transport (grpcio must be installed for that one).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory, create_client
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from common import Options, attempt, client_tls, methods_of, options, report, until, webhook
from google.protobuf import json_format
from google.protobuf.message import Message as Proto

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


def finished(push: dict[str, Any]) -> bool:
    """Whether a push body shows the task completed: a 1.0 StreamResponse
    (``{"task": …}``), or a 0.3 Task for a config made over 0.3."""
    state = push.get("task", push).get("status", {}).get("state")
    return state in ("TASK_STATE_COMPLETED", "completed")


def wire(value: Proto) -> dict[str, Any]:
    return json_format.MessageToDict(value)


def message(**fields: Any) -> Message:
    body = {"messageId": f"py1-{uuid.uuid4()}", "role": "ROLE_USER", **fields}
    return json_format.ParseDict(body, Message())


def greet(**fields: Any) -> Message:
    return message(parts=[{"data": {"name": "Ada Lovelace"}}], **fields)


def book() -> Message:
    return message(parts=[{"text": "Lisbon"}], metadata={"skill": "book"})


def answer(task: Task, *, with_context: bool = False) -> Message:
    context = {"contextId": task.context_id} if with_context else {}
    return message(parts=[{"text": "early May"}], taskId=task.id, **context)


def request(msg: Message, **configuration: Any) -> SendMessageRequest:
    body = {"message": wire(msg), "configuration": configuration}
    return json_format.ParseDict(body, SendMessageRequest())


class Driver:
    """The steps, on clients made for ``opts.dialect`` from the node's card."""

    def __init__(self, opts: Options, http: httpx.AsyncClient, card: AgentCard) -> None:
        self.opts = opts
        self.http = http
        self.card = card
        self.blocking = self.client(streaming=False)
        self.streaming = self.client(streaming=True)

    def client(self, *, streaming: bool, card: AgentCard | None = None) -> Client:
        bindings = [DIALECTS[self.opts.dialect or "1.0"][0]]
        config = ClientConfig(
            streaming=streaming,
            httpx_client=self.http,
            supported_protocol_bindings=bindings,
            grpc_channel_factory=self.grpc_channel if self.opts.dialect == "grpc" else None,
        )
        return ClientFactory(config).create(card or self.card)

    def grpc_channel(self, target: str) -> Any:
        """A channel to ``target`` (the card's gRPC ``host:port``) trusting only
        our CA and presenting NAME's certificate."""
        import grpc

        certs, name = self.opts.certs, self.opts.name
        credentials = grpc.ssl_channel_credentials(
            (certs / "ca.pem").read_bytes(),
            (certs / f"{name}-key.pem").read_bytes(),
            (certs / f"{name}.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(target, credentials)

    async def send(self, msg: Message, **configuration: Any) -> Task:
        """A blocking (non-streaming) send whose answer is a task."""
        (only,) = [r async for r in self.blocking.send_message(request(msg, **configuration))]
        return only.task

    async def get(self, task_id: str, **fields: Any) -> Task:
        return await self.blocking.get_task(GetTaskRequest(id=task_id, **fields))

    async def stream(self, msg: Message) -> list[dict[str, Any]]:
        return [wire(e) async for e in self.streaming.send_message(request(msg))]

    # The steps, in the order they run

    async def operations(self) -> dict[str, Any]:
        return {
            "client": methods_of(self.blocking),
            "transport": type(self.blocking._transport).__name__,  # type: ignore[attr-defined]
        }

    async def card_step(self) -> dict[str, Any]:
        resolver = A2ACardResolver(self.http, self.opts.url)
        from_url = await create_client(self.opts.url, ClientConfig(httpx_client=self.http))
        try:
            sent = [r async for r in from_url.send_message(request(greet()))]
        finally:
            await from_url.close()
        return {
            "well_known": wire(await resolver.get_agent_card()),
            "legacy_path": wire(
                await resolver.get_agent_card(relative_card_path="/.well-known/agent.json")
            ),
            "create_client_from_url": [wire(r) for r in sent],
        }

    async def send_blocking(self) -> dict[str, Any]:
        return wire(await self.send(greet()))

    async def send_non_blocking(self) -> dict[str, Any]:
        returned = await self.send(greet(), returnImmediately=True)
        later = await until(lambda: self.get(returned.id), lambda t: t.status.state in TERMINAL)
        return {"returned": wire(returned), "later": wire(later)}

    async def send_stream(self) -> list[dict[str, Any]]:
        return await self.stream(greet())

    async def get_task(self) -> dict[str, Any]:
        asked = await self.send(book())
        await self.send(answer(asked))
        return {
            "full": wire(await self.get(asked.id)),
            "last_one": wire(await self.get(asked.id, history_length=1)),
            "none": wire(await self.get(asked.id, history_length=0)),
        }

    async def list_tasks(self) -> dict[str, Any]:
        context = f"py1-{uuid.uuid4()}"
        sent = [await self.send(greet(contextId=context)) for _ in range(2)]
        listed = await self.blocking.list_tasks(ListTasksRequest(context_id=context))
        first = await self.blocking.list_tasks(ListTasksRequest(context_id=context, page_size=1))
        second = await self.blocking.list_tasks(
            ListTasksRequest(context_id=context, page_size=1, page_token=first.next_page_token)
        )
        return {
            "sent": [t.id for t in sent],
            "listed": wire(listed),
            "pages": [wire(first), wire(second)],
        }

    async def cancel(self) -> dict[str, Any]:
        asked = await self.send(book())
        return wire(await self.blocking.cancel_task(CancelTaskRequest(id=asked.id)))

    async def follow_up(self) -> dict[str, Any]:
        asked = await self.send(book())
        answered = await self.send(answer(asked, with_context=True))
        return {"asked": wire(asked), "answered": wire(answered)}

    async def follow_up_stream(self) -> dict[str, Any]:
        asked = await self.stream(book())
        task = json_format.ParseDict(asked[0]["task"], Task())
        return {"asked": asked, "answered": await self.stream(answer(task))}

    async def subscribe(self) -> dict[str, Any]:
        asked = await self.send(book())
        stream = self.streaming.subscribe(SubscribeToTaskRequest(id=asked.id))
        events = [wire(await anext(stream))]
        answered = await self.send(answer(asked))
        events += [wire(e) async for e in stream]
        return {"task_id": asked.id, "events": events, "answered": wire(answered)}

    async def push(self) -> dict[str, Any]:
        client = self.blocking
        async with webhook(self.opts) as hook:
            config = {
                "id": "py-push",
                "url": f"{hook.url}/py-hook",
                "token": "py-token",
                "authentication": {"scheme": "Bearer", "credentials": "py-cred"},
            }
            asked = await self.send(book(), taskPushNotificationConfig=config)
            extra = TaskPushNotificationConfig(
                task_id=asked.id, id="extra", url="https://example.com/py-push"
            )
            created = await client.create_task_push_notification_config(extra)
            got = await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=asked.id, id="py-push")
            )
            listing = ListTaskPushNotificationConfigsRequest(task_id=asked.id)
            listed = await client.list_task_push_notification_configs(listing)
            deletion = DeleteTaskPushNotificationConfigRequest(task_id=asked.id, id="extra")
            await client.delete_task_push_notification_config(deletion)
            again = await attempt(lambda: client.delete_task_push_notification_config(deletion))
            after = await client.list_task_push_notification_configs(listing)
            await self.send(answer(asked))
            await hook.until(lambda p: finished(p["body"]))
            return {
                "task_id": asked.id,
                "created": wire(created),
                "got": wire(got),
                "listed": wire(listed),
                "deleted_again": again,
                "after": wire(after),
                "pushes": hook.pushes,
            }

    async def extended_card(self) -> dict[str, Any]:
        """The card declares an extended card (``capabilities.extendedAgentCard``):
        the client asks the node for it; so does a client handed the card."""
        asking = GetExtendedAgentCardRequest()
        again = self.client(streaming=False, card=self.card)
        return {
            "client": wire(await self.blocking.get_extended_agent_card(asking)),
            "asked": wire(await again.get_extended_agent_card(asking)),
        }

    async def errors(self) -> dict[str, Any]:
        client = self.blocking
        done = await self.send(greet())
        missing = "no-such-task"

        async def subscribe_to(task_id: str) -> list[StreamResponse]:
            return [e async for e in self.streaming.subscribe(SubscribeToTaskRequest(id=task_id))]

        return {
            "get_unknown": await attempt(lambda: self.get(missing)),
            "cancel_unknown": await attempt(
                lambda: client.cancel_task(CancelTaskRequest(id=missing))
            ),
            "subscribe_unknown": await attempt(lambda: subscribe_to(missing)),
            "push_get_unknown_task": await attempt(
                lambda: client.get_task_push_notification_config(
                    GetTaskPushNotificationConfigRequest(task_id=missing, id="x")
                )
            ),
            "push_get_unknown_config": await attempt(
                lambda: client.get_task_push_notification_config(
                    GetTaskPushNotificationConfigRequest(task_id=done.id, id="x")
                )
            ),
            "follow_up_completed": await attempt(lambda: self.send(answer(done))),
            "cancel_completed": await attempt(
                lambda: client.cancel_task(CancelTaskRequest(id=done.id))
            ),
            "subscribe_completed": await attempt(lambda: subscribe_to(done.id)),
        }


#: The interface each dialect keeps of the card: (binding, version).
DIALECTS = {
    "1.0": ("JSONRPC", "1.0"),
    "0.3": ("JSONRPC", "0.3"),
    "rest": ("HTTP+JSON", "1.0"),
    "grpc": ("GRPC", "1.0"),
}


def for_dialect(card: AgentCard, dialect: str) -> AgentCard:
    """The card with only the interfaces of ``dialect`` (``1.0`` or ``0.3``
    over JSON-RPC, ``rest``: 1.0 over HTTP+JSON, ``grpc``: 1.0 over gRPC)."""
    narrowed = AgentCard()
    narrowed.CopyFrom(card)
    binding, version = DIALECTS[dialect]
    kept = [
        i
        for i in card.supported_interfaces
        if (i.protocol_binding, i.protocol_version) == (binding, version)
    ]
    del narrowed.supported_interfaces[:]
    narrowed.supported_interfaces.extend(kept)
    return narrowed


async def main() -> None:
    opts = options()
    async with httpx.AsyncClient(verify=client_tls(opts), timeout=30, headers=opts.headers) as http:
        card = await A2ACardResolver(http, opts.url).get_agent_card()
        driver = Driver(opts, http, for_dialect(card, opts.dialect or "1.0"))
        await report(
            {
                "operations": driver.operations,
                "card": driver.card_step,
                "send_blocking": driver.send_blocking,
                "send_non_blocking": driver.send_non_blocking,
                "send_stream": driver.send_stream,
                "get_task": driver.get_task,
                "list_tasks": driver.list_tasks,
                "cancel": driver.cancel,
                "follow_up": driver.follow_up,
                "follow_up_stream": driver.follow_up_stream,
                "subscribe": driver.subscribe,
                "push": driver.push,
                "extended_card": driver.extended_card,
                "errors": driver.errors,
            }
        )


if __name__ == "__main__":
    asyncio.run(main())
