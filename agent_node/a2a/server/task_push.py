"""Push notification configs of tasks, stored beside them.

The four ``…PushNotificationConfig`` methods, and ``taskPushNotificationConfig``
in a send, store configs that :class:`~agent_node.a2a.server.push.PushSender`
delivers. A config set with a new task gets every change of it; one set
later gets the changes from then on. The config id defaults to the task
id; a task has at most :data:`MAX_PUSH_CONFIGS`, however they come (a
send, its repeats, follow-ups, the create method: the store counts and
writes in one step, so racing adds cannot pass it either). A follow-up
holds its config's place before its message is taken, and gives it back
if the message is refused (:meth:`NewPush.hold`): a config refused for
want of room is a message not taken. Whether the caller may use the task
is checked before any of these is called.

Listing pages as ``ListTasks`` does: ``pageSize`` 1..100 (unset: all),
``nextPageToken`` "" on the last page. A token names the task and the last
config of the page before, ``(created_at, id)`` in the store's order, so a
config deleted meanwhile moves no other across a page boundary; a token
that is not one of ours for this task is InvalidParams.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass

from agent_node.a2a.protocol.errors import InvalidParams, PushNotificationNotSupported, TaskNotFound
from agent_node.a2a.protocol.models import (
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.push import PushSender, check_push_url
from agent_node.a2a.server.push_headers import is_field_value, is_token
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, ExecutionRecord, PushConfigRecord

__all__ = [
    "MAX_PUSH_CONFIGS",
    "MAX_PUSH_CONFIG_BYTES",
    "HeldPush",
    "NewPush",
    "check_push",
    "get_push",
    "list_push",
    "push_config_of",
    "set_push",
]

#: Push configs one task may have.
MAX_PUSH_CONFIGS = 10
#: The largest push config accepted, as JSON (URL, token and credentials).
MAX_PUSH_CONFIG_BYTES = 8192
#: A page token is base64 of ``[task id, created_at, config id]``: ids of at
#: most 1 KiB each (a longer one is no token of ours).
_MAX_TOKEN = 4 * (2 * 1024 + 64) // 3 + 4


def push_config_of(request: SendMessageRequest) -> TaskPushNotificationConfig | None:
    """The push config a send carries, if any."""
    config = request.configuration
    return config.task_push_notification_config if config else None


@dataclass(frozen=True, slots=True)
class NewPush:
    """A push config checked for a task and not stored yet (:func:`check_push`):
    a request checks it before it changes anything; a new task's send
    stores it once the task is made (:meth:`put`), a follow-up before its
    message is taken, given back if that is refused (:meth:`hold`), so a
    refused request leaves no config behind."""

    sender: PushSender
    #: As the task keeps it: its ``taskId`` and ``id`` filled in.
    config: TaskPushNotificationConfig
    #: ``config`` as the store keeps it (JSON).
    document: str

    @property
    def task_id(self) -> str:
        return self.config.task_id or ""

    async def hold(self, store: Store, ctx: CallContext, record: ExecutionRecord) -> HeldPush:
        """Store it now, from the task's current event on, for a request
        whose message is not taken yet: the place is its own before the
        message goes in, and :meth:`HeldPush.give_back` undoes this if the
        message is refused."""
        config_id = self.config.id or self.task_id
        # The config this one replaces, to put back then (as read here:
        # another request's write of this id between the read and the put
        # would be lost with a give-back of this one).
        held = await store.push_configs(self.task_id)
        previous = next((c for c in held if c.id == config_id), None)
        return HeldPush(await self.put(store, ctx, record), previous)

    async def put(
        self, store: Store, ctx: CallContext, record: ExecutionRecord | None
    ) -> PushConfigRecord:
        """Store it: from the start of its task (``record`` None), else from
        the task's current event on; what was stored."""
        settled = record is not None and record.status in TERMINAL
        stored = PushConfigRecord(
            task_id=self.task_id,
            id=self.config.id or self.task_id,
            config=self.document,
            version=ctx.version,
            caller=ctx.caller,
            created_at=time.time(),
            pushed_seq=record.last_seq if record else 0,
            settled=settled,
        )
        if not await store.put_push_config(stored, MAX_PUSH_CONFIGS):
            raise _full(self.task_id)
        if not settled:
            self.sender.watch(self.task_id)
        return stored


@dataclass(frozen=True, slots=True)
class HeldPush:
    """A push config stored for a request whose message is not taken yet
    (:meth:`NewPush.hold`)."""

    stored: PushConfigRecord
    #: The config of the same id it replaced, if any.
    previous: PushConfigRecord | None

    async def give_back(self, store: Store) -> None:
        """The message was refused: put back what the task had, unless
        another request changed that config since (then its write stands)."""
        await store.take_back_push_config(self.stored, self.previous)


def check_push(
    push: PushSender | None, config: TaskPushNotificationConfig, task_id: str
) -> NewPush:
    """``config`` as task ``task_id`` would keep it, if this agent pushes and
    the config is one it can deliver; else the protocol's error."""
    if push is None:
        raise PushNotificationNotSupported()
    check_push_url(config.url, push.allow)
    _check_header_values(config)
    config = config.model_copy(update={"task_id": task_id, "id": config.id or task_id})
    document = json.dumps(config.to_json(), ensure_ascii=False, separators=(",", ":"))
    if len(document.encode("utf-8")) > MAX_PUSH_CONFIG_BYTES:
        raise InvalidParams(f"push config larger than {MAX_PUSH_CONFIG_BYTES} bytes")
    return NewPush(push, config, document)


async def set_push(
    store: Store,
    push: PushSender | None,
    config: TaskPushNotificationConfig,
    ctx: CallContext,
    record: ExecutionRecord,
) -> TaskPushNotificationConfig:
    """Store a push config of task ``record`` from its current event on."""
    new = check_push(push, config, record.id)
    await new.put(store, ctx, record)
    return new.config


def _check_header_values(config: TaskPushNotificationConfig) -> None:
    """Refuse what would go in a push's headers but cannot
    (:mod:`.push_headers`); the value is not quoted: it is a credential."""
    auth = config.authentication
    fields = {"token": config.token}
    if auth is not None:
        fields["authentication.credentials"] = auth.credentials
        if auth.scheme and not is_token(auth.scheme):
            raise InvalidParams(
                "authentication.scheme is not an HTTP authentication scheme"
                " (letters, digits and !#$%&'*+-.^_`|~)"
            )
    for name, value in fields.items():
        if value and not is_field_value(value):
            raise InvalidParams(
                f"{name} cannot be sent in an HTTP header: visible ASCII only,"
                " with spaces or tabs only between other characters"
            )


def _full(task_id: str) -> InvalidParams:
    return InvalidParams(
        f"task {task_id} has {MAX_PUSH_CONFIGS} push configs already; delete one first"
    )


async def get_push(
    store: Store, request: GetTaskPushNotificationConfigRequest
) -> TaskPushNotificationConfig:
    for stored in await store.push_configs(request.task_id):
        if stored.id == request.id:
            return TaskPushNotificationConfig.model_validate_json(stored.config)
    raise TaskNotFound(f"task {request.task_id} has no push notification config {request.id!r}")


async def list_push(
    store: Store, request: ListTaskPushNotificationConfigsRequest
) -> ListTaskPushNotificationConfigsResponse:
    """One page of the task's push configs, in the store's order (oldest first)."""
    after = _position_of(request.page_token, request.task_id)
    stored = await store.push_configs(request.task_id)
    if after is not None:
        stored = [c for c in stored if (c.created_at, c.id) > after]
    page = stored[: request.page_size] if request.page_size else stored
    configs = [TaskPushNotificationConfig.model_validate_json(c.config) for c in page]
    more = len(page) < len(stored)
    token = _token_of(request.task_id, page[-1]) if more else ""
    return ListTaskPushNotificationConfigsResponse(configs=configs, next_page_token=token)


def _token_of(task_id: str, last: PushConfigRecord) -> str:
    position = json.dumps([task_id, last.created_at, last.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(position.encode()).decode()


def _position_of(token: str | None, task_id: str) -> tuple[float, str] | None:
    """The ``(created_at, id)`` a page token of ``task_id`` starts after
    (None: from the first); anything else is the caller's mistake."""
    if not token:
        return None
    refused = InvalidParams(
        f"pageToken is not one this agent issued for task {task_id[:200]!r}:"
        " pass the nextPageToken of the previous page"
    )
    if len(token) > _MAX_TOKEN:
        raise refused
    try:
        position = json.loads(base64.b64decode(token, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not JSON
        raise refused from None
    match position:
        case [str(owner), int() | float() as created_at, str(config_id)] if owner == task_id:
            return float(created_at), config_id
    raise refused
