"""The a2a-sdk 0.3.x client against our node, every operation it offers; see
common.py for the command line and the report.

The node is the greeter example: ``greet`` completes with a data artifact for
``{"name": …}``; ``book`` (message metadata ``{"skill": "book"}``) asks when,
and completes on the answer. The 0.3 client sends no ``A2A-Version`` header,
so the node answers in 0.3. Its objects are pydantic models, reported as wire
JSON (``model_dump(by_alias=True)``), so the test reads what the SDK understood.

The 0.3 ``Client`` has no ListTasks (A2A 0.3 has none) and no list or delete
of push configs; its JSON-RPC transport still sends those two as the SDK's own
request models and reads the answers with its response models, which is how
this driver covers them. The deprecated ``A2AClient`` is the same transport
with JSON-RPC envelopes around the results; the ``legacy`` step drives it too.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClient, Client, ClientConfig, ClientFactory
from a2a.client.transports import JsonRpcTransport
from a2a.types import (
    AgentCard,
    DeleteTaskPushNotificationConfigParams,
    DeleteTaskPushNotificationConfigRequest,
    DeleteTaskPushNotificationConfigResponse,
    GetTaskPushNotificationConfigParams,
    GetTaskRequest,
    JSONRPCErrorResponse,
    ListTaskPushNotificationConfigParams,
    ListTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigResponse,
    Message,
    MessageSendConfiguration,
    MessageSendParams,
    PushNotificationConfig,
    SendMessageRequest,
    SendStreamingMessageRequest,
    Task,
    TaskIdParams,
    TaskPushNotificationConfig,
    TaskQueryParams,
    TaskState,
)
from common import Options, attempt, client_tls, methods_of, options, report, until, webhook
from pydantic import BaseModel

TERMINAL = {TaskState.completed, TaskState.failed, TaskState.canceled, TaskState.rejected}


def wire(value: BaseModel | None) -> Any:
    return (
        None if value is None else value.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


def message(**fields: Any) -> Message:
    body = {"kind": "message", "messageId": f"py03-{uuid.uuid4()}", "role": "user", **fields}
    return Message.model_validate(body)


def greet(**fields: Any) -> Message:
    return message(parts=[{"kind": "data", "data": {"name": "Ada Lovelace"}}], **fields)


def book() -> Message:
    return message(parts=[{"kind": "text", "text": "Lisbon"}], metadata={"skill": "book"})


def answer(task_id: str, context_id: str | None = None) -> Message:
    context = {"contextId": context_id} if context_id else {}
    return message(parts=[{"kind": "text", "text": "early May"}], taskId=task_id, **context)


class Driver:
    """The steps, on clients made from the node's card."""

    def __init__(self, opts: Options, http: httpx.AsyncClient, card: AgentCard) -> None:
        self.opts = opts
        self.http = http
        self.card = card
        self.blocking = self.client(streaming=False)
        self.streaming = self.client(streaming=True)
        self.transport = JsonRpcTransport(http, agent_card=card)

    def client(self, *, streaming: bool, card: AgentCard | None = None) -> Client:
        config = ClientConfig(streaming=streaming, httpx_client=self.http)
        return ClientFactory(config).create(card or self.card)

    async def send(self, msg: Message, **configuration: Any) -> Task:
        """A non-streaming send whose answer is a task (``blocking`` unless told)."""
        config = MessageSendConfiguration(**configuration) if configuration else None
        (only,) = [e async for e in self.blocking.send_message(msg, configuration=config)]
        if not isinstance(only, tuple):
            raise AssertionError(f"expected a task, got {only!r}")
        return only[0]

    async def get(self, task_id: str, **fields: Any) -> Task:
        return await self.blocking.get_task(TaskQueryParams(id=task_id, **fields))

    async def stream(self, msg: Message) -> dict[str, Any]:
        """A streamed send: each event as it came (the update, or the task for
        the first event), and the task the client put together from them."""
        events: list[Any] = []
        task: Task | None = None
        async for event in self.streaming.send_message(msg):
            if not isinstance(event, tuple):
                raise AssertionError(f"expected task events, got {event!r}")
            task, update = event  # the client updates its task in place: read it now
            events.append(wire(update or task))
        return {"events": events, "task": wire(task)}

    # The steps, in the order they run

    async def operations(self) -> dict[str, Any]:
        return {"client": methods_of(self.blocking), "transport": methods_of(self.transport)}

    async def card_step(self) -> dict[str, Any]:
        resolver = A2ACardResolver(self.http, self.opts.url)
        return {
            "well_known": wire(await resolver.get_agent_card()),
            "legacy_path": wire(
                await resolver.get_agent_card(relative_card_path="/.well-known/agent.json")
            ),
        }

    async def send_blocking(self) -> Any:
        return wire(await self.send(greet()))

    async def send_non_blocking(self) -> dict[str, Any]:
        returned = await self.send(greet(), blocking=False)
        later = await until(lambda: self.get(returned.id), lambda t: t.status.state in TERMINAL)
        return {"returned": wire(returned), "later": wire(later)}

    async def send_stream(self) -> dict[str, Any]:
        return await self.stream(greet())

    async def get_task(self) -> dict[str, Any]:
        asked = await self.send(book())
        await self.send(answer(asked.id))
        return {
            "full": wire(await self.get(asked.id)),
            "last_one": wire(await self.get(asked.id, history_length=1)),
            "none": wire(await self.get(asked.id, history_length=0)),
        }

    async def cancel(self) -> Any:
        asked = await self.send(book())
        return wire(await self.blocking.cancel_task(TaskIdParams(id=asked.id)))

    async def follow_up(self) -> dict[str, Any]:
        asked = await self.send(book())
        answered = await self.send(answer(asked.id, asked.context_id))
        return {"asked": wire(asked), "answered": wire(answered)}

    async def follow_up_stream(self) -> dict[str, Any]:
        asked = await self.stream(book())
        task = asked["task"]
        return {"asked": asked, "answered": await self.stream(answer(task["id"]))}

    async def subscribe(self) -> dict[str, Any]:
        asked = await self.send(book())
        stream = self.streaming.resubscribe(TaskIdParams(id=asked.id))
        # Each event is read as it comes: the client updates its task in place.
        task, update = await anext(stream)
        events = [wire(update or task)]
        answered = await self.send(answer(asked.id))
        async for task, update in stream:
            events.append(wire(update or task))
        return {
            "task_id": asked.id,
            "events": events,
            "task": wire(task),
            "answered": wire(answered),
        }

    async def push(self) -> dict[str, Any]:
        client = self.blocking
        async with webhook(self.opts) as hook:
            config = PushNotificationConfig.model_validate(
                {
                    "id": "py-push",
                    "url": f"{hook.url}/py-hook",
                    "token": "py-token",
                    "authentication": {"schemes": ["Bearer"], "credentials": "py-cred"},
                }
            )
            asked = await self.send(book(), push_notification_config=config)
            extra = PushNotificationConfig(id="extra", url="https://example.com/py-push")
            created = await client.set_task_callback(
                TaskPushNotificationConfig(task_id=asked.id, push_notification_config=extra)
            )
            got = await client.get_task_callback(
                GetTaskPushNotificationConfigParams(
                    id=asked.id, push_notification_config_id="py-push"
                )
            )
            listed = await self.list_configs(asked.id)
            await self.delete_config(asked.id, "extra")
            again = await attempt(lambda: self.delete_config(asked.id, "extra"))
            after = await self.list_configs(asked.id)
            await self.send(answer(asked.id))
            await hook.until(lambda p: p["body"].get("status", {}).get("state") == "completed")
            return {
                "task_id": asked.id,
                "created": wire(created),
                "got": wire(got),
                "listed": listed,
                "deleted_again": again,
                "after": after,
                "pushes": hook.pushes,
            }

    async def list_configs(self, task_id: str) -> Any:
        request = ListTaskPushNotificationConfigRequest(
            id=str(uuid.uuid4()), params=ListTaskPushNotificationConfigParams(id=task_id)
        )
        answer = await self.transport._send_request(wire(request))
        return wire(ListTaskPushNotificationConfigResponse.model_validate(answer).root)

    async def delete_config(self, task_id: str, config_id: str) -> Any:
        params = DeleteTaskPushNotificationConfigParams(
            id=task_id, push_notification_config_id=config_id
        )
        request = DeleteTaskPushNotificationConfigRequest(id=str(uuid.uuid4()), params=params)
        answer = await self.transport._send_request(wire(request))
        found = DeleteTaskPushNotificationConfigResponse.model_validate(answer).root
        if isinstance(found, JSONRPCErrorResponse):
            raise AssertionError(f"delete failed: {wire(found)}")
        return wire(found)

    async def legacy(self) -> dict[str, Any]:
        """The deprecated ``A2AClient``: results in their JSON-RPC envelopes."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = A2AClient(self.http, agent_card=self.card)
        sent = await old.send_message(
            SendMessageRequest(id="legacy-1", params=MessageSendParams(message=greet()))
        )
        streamed = [
            wire(e)
            async for e in old.send_message_streaming(
                SendStreamingMessageRequest(
                    id="legacy-2", params=MessageSendParams(message=greet())
                )
            )
        ]
        got = await old.get_task(
            GetTaskRequest(id="legacy-3", params=TaskQueryParams(id=sent.root.result.id))
        )
        return {
            "sent": wire(sent),
            "streamed": streamed,
            "got": wire(got),
            "card": wire(await old.get_card()),
        }

    async def extended_card(self) -> dict[str, Any]:
        """The client asks the node only when the card says
        ``supportsAuthenticatedExtendedCard``; ours does not, so the client keeps
        the public card. A client handed a card that claims one does ask."""
        claiming = self.card.model_copy(update={"supports_authenticated_extended_card": True})
        misled = self.client(streaming=False, card=claiming)
        return {
            "client": wire(await self.blocking.get_card()),
            "asked": await attempt(misled.get_card, wire),
        }

    async def errors(self) -> dict[str, Any]:
        client = self.blocking
        done = await self.send(greet())
        missing = "no-such-task"

        async def subscribe_to(task_id: str) -> list[Any]:
            return [e async for e in self.streaming.resubscribe(TaskIdParams(id=task_id))]

        def config_of(task_id: str) -> GetTaskPushNotificationConfigParams:
            return GetTaskPushNotificationConfigParams(id=task_id, push_notification_config_id="x")

        return {
            "get_unknown": await attempt(lambda: self.get(missing)),
            "cancel_unknown": await attempt(lambda: client.cancel_task(TaskIdParams(id=missing))),
            "subscribe_unknown": await attempt(lambda: subscribe_to(missing)),
            "push_get_unknown_task": await attempt(
                lambda: client.get_task_callback(config_of(missing))
            ),
            "push_get_unknown_config": await attempt(
                lambda: client.get_task_callback(config_of(done.id))
            ),
            "follow_up_completed": await attempt(lambda: self.send(answer(done.id))),
            "cancel_completed": await attempt(lambda: client.cancel_task(TaskIdParams(id=done.id))),
            "subscribe_completed": await attempt(lambda: subscribe_to(done.id)),
        }


async def main() -> None:
    opts = options()
    async with httpx.AsyncClient(verify=client_tls(opts), timeout=30) as http:
        card = await A2ACardResolver(http, opts.url).get_agent_card()
        driver = Driver(opts, http, card)
        await report(
            {
                "operations": driver.operations,
                "card": driver.card_step,
                "send_blocking": driver.send_blocking,
                "send_non_blocking": driver.send_non_blocking,
                "send_stream": driver.send_stream,
                "get_task": driver.get_task,
                "cancel": driver.cancel,
                "follow_up": driver.follow_up,
                "follow_up_stream": driver.follow_up_stream,
                "subscribe": driver.subscribe,
                "push": driver.push,
                "legacy": driver.legacy,
                "extended_card": driver.extended_card,
                "errors": driver.errors,
            }
        )


if __name__ == "__main__":
    asyncio.run(main())
