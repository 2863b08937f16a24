"""Push notifications: configs, delivery to a real webhook, retries, SSRF, restarts."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from support.webhook import Push, Receiver, receiving
from support.workflows import echo

from agent_node import Runtime, load_workflow
from agent_node.a2a.protocol.errors import InvalidParams, PushNotificationNotSupported, TaskNotFound
from agent_node.a2a.protocol.models import (
    AuthenticationInfo,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    TaskPushNotificationConfig,
    TaskState,
)
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
from agent_node.a2a.server.push import AllowList, PushSender, check_push_url
from agent_node.a2a.server.task_push import MAX_PUSH_CONFIGS
from agent_node.a2a.server.tasks import TaskService
from agent_node.config import PushSettings
from agent_node.engine.owner import Owner

ROOT = Path(__file__).resolve().parents[2]
CTX = CallContext()
LOOPBACK = PushSettings(allow=["127.0.0.0/8"])


@asynccontextmanager
async def node(
    url: str, settings: PushSettings = LOOPBACK, *, sending: bool = True
) -> AsyncIterator[TaskService]:
    """A task service with a push sender (started only when ``sending``)."""
    async with Runtime(url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"echo": echo().compile(), "book": book})
        service.push = PushSender(  # owned as a node's are: by its engine's name
            runtime.store, service.render_push, settings, owner=str(runtime.engine.owner), poll=0.05
        )
        if sending:
            await service.push.start()
        try:
            yield service
        finally:
            await service.push.close()


@pytest.fixture
async def service(durable_url: str) -> AsyncIterator[TaskService]:
    async with node(durable_url) as service:
        yield service


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


def send(
    text: str,
    *,
    push: TaskPushNotificationConfig | None = None,
    skill: str = "echo",
    task_id: str | None = None,
    immediately: bool = False,
) -> SendMessageRequest:
    message = Message(message_id="m-1", role=Role.USER, parts=[Part(text=text)], task_id=task_id)
    config = SendMessageConfiguration(
        task_push_notification_config=push, return_immediately=immediately or None
    )
    return SendMessageRequest(message=message, configuration=config, metadata={"skill": skill})


def target(url: str, **fields: Any) -> TaskPushNotificationConfig:
    return TaskPushNotificationConfig(url=url, **fields)


def states(pushes: list[Push]) -> list[str]:
    return [p.body["task"]["status"]["state"] for p in pushes]


def reached(state: str) -> Callable[[list[Push]], bool]:
    return lambda pushes: state in states(pushes)


# -- delivery -------------------------------------------------------------------


async def test_a_push_per_stop_with_the_token_and_authorization(
    service: TaskService, hook: Receiver
) -> None:
    push = target(
        f"{hook.url}/webhook",
        id="cfg-1",
        token="tok-123",
        authentication=AuthenticationInfo(scheme="Bearer", credentials="secret-cred"),
    )
    asked = (await service.send_message(send("Lisbon", push=push, skill="book"), CTX)).task
    assert asked is not None and asked.status.state == TaskState.INPUT_REQUIRED
    await hook.wait_for(reached("TASK_STATE_INPUT_REQUIRED"), "the input-required push")
    await service.send_message(send("in May", task_id=asked.id), CTX)
    await hook.wait_for(reached("TASK_STATE_COMPLETED"), "the completed push")

    assert states(hook.accepted()) == ["TASK_STATE_INPUT_REQUIRED", "TASK_STATE_COMPLETED"]
    for received in hook.accepted():
        assert received.path == "/webhook"
        assert received.headers["authorization"] == "Bearer secret-cred"
        assert received.headers["x-a2a-notification-token"] == "tok-123"
        assert received.headers["content-type"] == "application/json"
        task = StreamResponse.model_validate(received.body).task
        assert task is not None and task.id == asked.id
    done = StreamResponse.model_validate(hook.accepted()[-1].body).task
    assert done is not None and done.artifacts
    assert done.artifacts[0].parts[0].text == "Booked Lisbon for in May."


async def test_a_0_3_caller_gets_0_3_task_objects(service: TaskService, hook: Receiver) -> None:
    v03 = CallContext(version="0.3")
    await service.send_message(send("hi", push=target(hook.url)), v03)
    await hook.wait_for(lambda pushes: len(pushes) == 1, "one push")
    (received,) = hook.accepted()
    assert received.body["kind"] == "task" and received.body["status"]["state"] == "completed"
    assert "authorization" not in received.headers  # none configured


async def test_failures_are_retried_with_backoff_then_delivered(
    service: TaskService, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "agent_node.a2a.server.push")
    hook.fail_with = [503, 500]
    task = (await service.send_message(send("hi", push=target(hook.url, id="c")), CTX)).task
    assert task is not None
    await hook.wait_for(lambda pushes: len(pushes) == 1, "the push after two failures")
    assert [p.status for p in hook.pushes] == [503, 500, 200]

    async def settled() -> bool:
        (stored,) = await service.runtime.store.push_configs(task.id)
        return stored.settled

    await until(settled, "the delivered push to be recorded")
    (stored,) = await service.runtime.store.push_configs(task.id)
    assert (stored.attempts, stored.last_error) == (0, None)
    await asyncio.sleep(0.3)
    assert len(hook.pushes) == 3  # settled: nothing more is sent
    # The first failure of the run is logged, once (an operator's walk saw
    # nothing logged while pushes to a caller that was down failed for 40 s).
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and "HTTP 503" in failed[0] and "trying again" in failed[0], failed


async def test_the_log_names_a_push_s_origin_and_config_never_its_path_or_query(
    service: TaskService, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A caller's webhook URL may hold its secret in the query or the path
    (a Slack or Discord webhook's token is its path): the operator's log
    says where by the origin and the config, nothing more."""
    caplog.set_level(logging.DEBUG, "agent_node")
    hook.fail_with = [500, 404]
    push = target(f"{hook.url}/hooks/SECRET-PATH;SECRET-PARAM?key=SECRET-QUERY#SECRET", id="c1")
    task = (await service.send_message(send("hi", push=push), CTX)).task
    assert task is not None

    async def given_up() -> bool:
        (stored,) = await service.runtime.store.push_configs(task.id)
        return stored.settled

    await until(given_up, "the push to be given up")
    said = [r.getMessage() for r in caplog.records if r.name.startswith("agent_node")]
    assert [m for m in said if m.startswith("push to")] == [
        f"push to {hook.url} (config 'c1') for task {task.id} failed: HTTP 500;"
        " trying again (8 tries in all)",
        f"push to {hook.url} (config 'c1') for task {task.id}: gave up after 2 tries: HTTP 404",
    ]
    assert not [m for m in said if "SECRET" in m]


async def test_a_client_error_is_not_retried(service: TaskService, hook: Receiver) -> None:
    hook.fail_with = [404]
    task = (await service.send_message(send("hi", push=target(hook.url)), CTX)).task
    assert task is not None

    async def given_up() -> bool:
        (stored,) = await service.runtime.store.push_configs(task.id)
        return stored.settled

    await until(given_up, "the push to be given up")
    assert [p.status for p in hook.pushes] == [404]
    (stored,) = await service.runtime.store.push_configs(task.id)
    assert stored.last_error == "gave up: HTTP 404"


async def test_an_unreachable_receiver_is_retried_and_does_not_block_others(
    service: TaskService, hook: Receiver
) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    try:
        lost = await service.send_message(send("a", push=target(f"http://127.0.0.1:{port}")), CTX)
        await service.send_message(send("b", push=target(hook.url)), CTX)
        await hook.wait_for(lambda pushes: len(pushes) == 1, "the other task's push")
        assert lost.task is not None

        async def retrying() -> bool:
            (stored,) = await service.runtime.store.push_configs(lost.task.id)  # type: ignore[union-attr]
            return stored.attempts >= 1 and "ConnectError" in (stored.last_error or "")

        await until(retrying, "the refused push to be scheduled for a retry")
    finally:
        dead.close()


async def test_pushes_owed_before_a_restart_are_delivered_after_it(
    durable_url: str, hook: Receiver
) -> None:
    async with node(durable_url, sending=False) as first:
        for text in ("one", "two"):
            await first.send_message(send(text, push=target(hook.url)), CTX)
        task_ids = [r.id for r in await first.runtime.store.list_executions()]
    assert hook.pushes == []  # nothing was sending: the pushes are owed
    async with node(durable_url):
        await hook.wait_for(lambda pushes: len(pushes) == 2, "both owed pushes")
    pushed = sorted(p.body["task"]["id"] for p in hook.accepted())
    assert pushed == sorted(task_ids)


async def test_a_push_claimed_by_a_process_that_died_is_sent_when_the_node_restarts(
    durable_url: str, hook: Receiver
) -> None:
    """A push claimed when its process was SIGKILLed: the restarted node
    takes it up at once, as it does its dead process's work leases, not
    when the claim runs out (here ten minutes; a node's is its push timeout
    and 15 s)."""
    async with node(durable_url, sending=False) as first:
        await first.send_message(send("one", push=target(hook.url)), CTX)
        me = first.runtime.engine.owner
        dead = Owner(me.node, me.host, _dead_pid(), "gone")  # this node's, SIGKILLed
        now = time.time()
        claims = await first.runtime.store.claim_pushes(
            str(dead), now=now, lease_until=now + 600, limit=10
        )
        assert len(claims) == 1
    async with node(durable_url):
        await hook.wait_for(lambda pushes: len(pushes) == 1, "the push the dead process held", 10)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# -- configs ----------------------------------------------------------------------


async def test_push_config_crud(service: TaskService) -> None:
    task = (await service.send_message(send("Porto", skill="book"), CTX)).task
    assert task is not None
    created = await service.create_task_push_notification_config(
        target("https://example.com/tck-push-webhook", task_id=task.id, id="tck-push-1"), CTX
    )
    assert (created.task_id, created.id) == (task.id, "tck-push-1")
    defaulted = await service.create_task_push_notification_config(
        target("https://example.com/other", task_id=task.id), CTX
    )
    assert defaulted.id == task.id  # the config id defaults to the task id
    got = await service.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task.id, id="tck-push-1"), CTX
    )
    assert got == created
    listed = await service.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task.id), CTX
    )
    assert {c.id for c in listed.configs or []} == {"tck-push-1", task.id}
    assert listed.next_page_token == ""
    delete = DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="tck-push-1")
    assert (await service.delete_task_push_notification_config(delete, CTX)).to_json() == {}
    await service.delete_task_push_notification_config(delete, CTX)  # idempotent
    with pytest.raises(TaskNotFound, match="no push notification config 'tck-push-1'"):
        await service.get_task_push_notification_config(
            GetTaskPushNotificationConfigRequest(task_id=task.id, id="tck-push-1"), CTX
        )
    with pytest.raises(TaskNotFound):
        await service.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id="no-such-task"), CTX
        )
    with pytest.raises(TaskNotFound):
        await service.create_task_push_notification_config(
            target("https://example.com/x", task_id="no-such-task"), CTX
        )


async def test_a_task_has_at_most_so_many_configs(service: TaskService) -> None:
    task = (await service.send_message(send("Faro", skill="book"), CTX)).task
    assert task is not None
    for n in range(MAX_PUSH_CONFIGS):
        config = target(f"https://example.com/{n}", task_id=task.id, id=f"c{n}")
        await service.create_task_push_notification_config(config, CTX)
    replaced = target("https://example.com/new", task_id=task.id, id="c0")
    await service.create_task_push_notification_config(replaced, CTX)  # replacing is fine
    with pytest.raises(InvalidParams, match="delete one first"):
        await service.create_task_push_notification_config(
            target("https://example.com/x", task_id=task.id, id="one-too-many"), CTX
        )


async def test_a_config_set_on_a_finished_task_sends_nothing(
    service: TaskService, hook: Receiver
) -> None:
    task = (await service.send_message(send("hi"), CTX)).task
    assert task is not None and task.status.state == TaskState.COMPLETED
    await service.create_task_push_notification_config(target(hook.url, task_id=task.id), CTX)
    (stored,) = await service.runtime.store.push_configs(task.id)
    assert stored.settled
    await asyncio.sleep(0.3)
    assert hook.pushes == []


async def test_a_node_without_push_refuses_push_configs(durable_url: str) -> None:
    async with Runtime(durable_url, scope="all") as runtime:
        service = TaskService(runtime, {"echo": echo().compile()})
        with pytest.raises(PushNotificationNotSupported):
            await service.send_message(send("hi", push=target("https://example.com/x")), CTX)
        assert await runtime.store.list_executions() == []  # nothing was started


# -- SSRF -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:9/x", "not a public address"),
        ("http://localhost/x", "not a public address"),
        ("http://api.localhost/x", "not a public address"),
        ("http://[::1]/x", "not a public address"),
        ("http://10.1.2.3/x", "not a public address"),
        ("http://192.168.0.1/x", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::ffff:10.0.0.1]/x", "not a public address"),
        ("http://0.0.0.0/x", "not a public address"),
        ("http://224.0.0.1/x", "not a public address"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("ftp://example.com/x", "scheme must be http or https"),
        ("http://user:pw@example.com/x", "user info"),
        ("http:///x", "has no host"),
        ("http://example.com:99999/x", "not a valid URL"),
        ("https://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_push_urls_that_are_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidParams, match=problem):
        check_push_url(url, AllowList())


def test_push_urls_that_pass() -> None:
    check_push_url("https://example.com/hook?x=1", AllowList())
    check_push_url("http://93.184.216.34:8080/hook", AllowList())
    allowed = AllowList.of(["127.0.0.0/8", "hooks.internal", "fd00::/8"])
    check_push_url("http://127.0.0.1:9/x", allowed)
    check_push_url("http://HOOKS.internal/x", allowed)
    check_push_url("http://[fd00::1]/x", allowed)
    with pytest.raises(InvalidParams):
        check_push_url("http://10.0.0.1/x", allowed)


async def test_a_refused_url_is_refused_in_a_send_and_nothing_starts(durable_url: str) -> None:
    async with node(durable_url, PushSettings()) as service:
        with pytest.raises(InvalidParams, match=r"push\.allow"):
            await service.send_message(send("hi", push=target("http://127.0.0.1:1/x")), CTX)
        assert await service.runtime.store.list_executions() == []


async def test_a_name_that_resolves_to_a_private_address_is_refused_before_posting(
    durable_url: str, hook: Receiver
) -> None:
    name = socket.gethostname()
    try:
        address = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        pytest.skip("this machine's host name does not resolve")
    if AllowList().permits(__import__("ipaddress").ip_address(address)):
        pytest.skip("this machine's host name resolves to a public address")
    port = hook.url.rsplit(":", 1)[1]
    async with node(durable_url, PushSettings()) as service:
        task = await service.send_message(send("hi", push=target(f"http://{name}:{port}")), CTX)
        assert task.task is not None
        (stored,) = await service.runtime.store.push_configs(task.task.id)

        async def given_up() -> bool:
            (stored,) = await service.runtime.store.push_configs(task.task.id)  # type: ignore[union-attr]
            return stored.settled

        await until(given_up, "the push to be refused")
        (stored,) = await service.runtime.store.push_configs(task.task.id)
        assert stored.last_error is not None and "which is not public" in stored.last_error
    assert hook.pushes == []


async def until(condition: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- over JSON-RPC, both protocol generations ---------------------------------------


async def test_push_config_methods_over_json_rpc_1_0_and_0_3(
    service: TaskService, hook: Receiver
) -> None:
    endpoint = jsonrpc_endpoint(
        service, capabilities={"streaming": True, "pushNotifications": True}
    )
    app = Starlette(routes=[Route("/a2a", endpoint, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://n") as http:

        async def rpc(method: str, params: dict[str, Any], version: str = "1.0") -> Any:
            body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
            headers = {"A2A-Version": version} if version == "1.0" else {}
            return (await http.post("/a2a", json=body, headers=headers)).json()

        message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "Oslo"}]}
        sent = await rpc("SendMessage", {"message": message, "metadata": {"skill": "book"}})
        task_id = sent["result"]["task"]["id"]
        created = await rpc(
            "CreateTaskPushNotificationConfig",
            {"taskId": task_id, "id": "one", "url": f"{hook.url}/h", "token": "tok"},
        )
        assert created["result"] == {
            "taskId": task_id,
            "id": "one",
            "url": f"{hook.url}/h",
            "token": "tok",
        }
        # 0.3 names and shapes: nested config, task "id" and "pushNotificationConfigId".
        nested = {"taskId": task_id, "pushNotificationConfig": {"id": "two", "url": hook.url}}
        set_v03 = await rpc("tasks/pushNotificationConfig/set", nested, "0.3")
        assert set_v03["result"] == nested
        get_v03 = await rpc(
            "tasks/pushNotificationConfig/get",
            {"id": task_id, "pushNotificationConfigId": "one"},
            "0.3",
        )
        assert get_v03["result"]["pushNotificationConfig"]["token"] == "tok"
        listed = await rpc("tasks/pushNotificationConfig/list", {"id": task_id}, "0.3")
        assert sorted(c["pushNotificationConfig"]["id"] for c in listed["result"]) == ["one", "two"]
        deleted = await rpc(
            "tasks/pushNotificationConfig/delete",
            {"id": task_id, "pushNotificationConfigId": "two"},
            "0.3",
        )
        assert deleted == {"jsonrpc": "2.0", "id": 7, "result": None}
        again = await rpc("DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": "two"})
        assert again["result"] == {}
        missing = await rpc("GetTaskPushNotificationConfig", {"taskId": task_id, "id": "two"})
        assert missing["error"]["code"] == -32001
        refused = await rpc(
            "CreateTaskPushNotificationConfig",
            {"taskId": task_id, "url": "http://169.254.169.254/latest"},
        )
        assert refused["error"]["code"] == -32602
        assert "not a public address" in refused["error"]["message"]
        # Set on a parked task, a config gets the changes from then on.
        answer = {**message, "messageId": "m2", "taskId": task_id, "parts": [{"text": "May"}]}
        await rpc("SendMessage", {"message": answer})
        await hook.wait_for(reached("TASK_STATE_COMPLETED"), "the push to config 'one'")
        assert states(hook.accepted()) == ["TASK_STATE_COMPLETED"]
        assert {p.path for p in hook.accepted()} == {"/h"}


async def test_a_push_by_name_goes_to_the_checked_address_with_its_host_header(
    durable_url: str, hook: Receiver
) -> None:
    """localhost resolves to loopback addresses (allowed here by network, not by
    name): the POST connects to a checked address, with the URL's Host."""
    port = hook.url.rsplit(":", 1)[1]
    settings = PushSettings(allow=["127.0.0.0/8", "::1"])
    async with node(durable_url, settings) as service:
        push = target(f"http://localhost:{port}/by-name")
        await service.send_message(send("hi", push=push), CTX)
        await hook.wait_for(lambda pushes: len(pushes) == 1, "the push by name")
    (received,) = hook.accepted()
    assert received.path == "/by-name" and received.headers["host"] == f"localhost:{port}"


def test_pinned_urls_keep_host_and_tls_name() -> None:
    from agent_node.a2a.server.push_guard import pinned as _pinned

    assert _pinned("https://hooks.example.com/a?b=1", "93.184.216.34") == (
        "https://93.184.216.34/a?b=1",
        {"Host": "hooks.example.com"},
        {"sni_hostname": "hooks.example.com"},
    )
    assert _pinned("http://hooks.example.com:8080/a", "2001:db8::1") == (
        "http://[2001:db8::1]:8080/a",
        {"Host": "hooks.example.com:8080"},
        {},
    )
    assert _pinned("http://allowed.internal/a", None) == ("http://allowed.internal/a", {}, {})
