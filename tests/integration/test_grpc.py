"""The gRPC binding over a real server (agent-node's HTTP/2 one) on loopback with real
certificates: the binding's rules (errors as statuses with an ErrorInfo,
metadata, gates, limits, mutual TLS) in front of a fake handler, and every
operation end to end on the task service (SQLite, PostgreSQL). The a2a-sdk
client's gRPC transport is run against a node in tests/e2e."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from support.certs import issue_cn_only, make_certs  # noqa: E402
from support.fake_handler import SECRET, FakeHandler  # noqa: E402
from support.grpc_calls import Caller, mtls_channel, raw_request, refusal  # noqa: E402
from support.workflows import greeter  # noqa: E402

from agent_node import Runtime, load_workflow  # noqa: E402
from agent_node.a2a.server.app import Guard  # noqa: E402
from agent_node.a2a.server.card import build_card  # noqa: E402
from agent_node.a2a.server.grpc.server import bind, serve_service, stop  # noqa: E402
from agent_node.a2a.server.grpc.service import A2AService  # noqa: E402
from agent_node.a2a.server.limits import Limits  # noqa: E402
from agent_node.a2a.server.push import PushSender  # noqa: E402
from agent_node.a2a.server.tasks import TaskService  # noqa: E402
from agent_node.config import NodeConfig, PushSettings  # noqa: E402
from agent_node.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ALL_CAPS = {"streaming": True, "pushNotifications": True}
NO_CAPS = {"streaming": False, "pushNotifications": False}
DOMAIN = "a2a-protocol.org"
ALICE = "spiffe://example.org/agent/alice"
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_certs(tmp_path_factory.mktemp("certs"), "node", "alice", "bob")
    issue_cn_only(folder, "nameless", "nameless")
    return folder


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Path:
    """An "alice" of another CA, in a folder that trusts the node's CA."""
    folder = make_certs(tmp_path_factory.mktemp("rogue"), "alice")
    (folder / "ca.pem").write_bytes((certs / "ca.pem").read_bytes())
    return folder


@dataclass
class Served:
    target: str
    certs: Path

    def caller(self, name: str | None = "alice", certs: Path | None = None) -> Caller:
        return Caller(mtls_channel(self.target, certs or self.certs, name))


Serve = Callable[..., Any]


@pytest.fixture
async def serve(certs: Path) -> AsyncIterator[Serve]:
    """Serve a handler over mutual TLS on a free loopback port."""
    servers: list[Any] = []

    async def start(
        handler: Any,
        caps: dict[str, Any] = NO_CAPS,
        limits: Limits | None = None,
        guard: Guard | None = None,
    ) -> Served:
        limits = limits or Limits()
        tls = (certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"])
        server, port = bind("127.0.0.1", 0, limits, tls)
        service = A2AService(handler, capabilities=caps, limits=limits, guard=guard, secure=True)
        await serve_service(server, service)
        servers.append(server)
        return Served(f"localhost:{port}", certs)

    yield start
    for server in servers:
        await stop(server, 0)


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler.with_working_task()


def message(text: str = "hello") -> dict[str, Any]:
    return {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}]}}


async def refused(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return refusal(caught.value)


# The binding's rules


async def test_a_call_reaches_the_handler_as_json_with_the_caller_and_metadata(
    serve: Serve, handler: FakeHandler
) -> None:
    node = (await serve(handler)).caller()
    metadata = (
        ("idempotency-key", "k-1"),
        ("a2a-extensions", "urn:a, urn:b"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    )
    sent = await node.call("SendMessage", message(), metadata)
    assert sent["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert sent["task"]["history"][0]["parts"] == [{"text": "hello"}]
    got = await node.call("GetTask", {"id": "t1", "historyLength": 0})
    assert got == {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}
    (_, request, ctx), (_, get, _) = handler.calls
    assert (ctx.caller, ctx.idempotency_key, ctx.extensions) == (ALICE, "k-1", ("urn:a", "urn:b"))
    assert ctx.traceparent == metadata[2][1] and ctx.version == "1.0"
    assert request.message.message_id == "m-1"
    assert (get.id, get.history_length) == ("t1", 0)


async def test_errors_are_the_table_s_statuses_with_an_error_info(
    serve: Serve, handler: FakeHandler
) -> None:
    node = (await serve(handler)).caller()
    missing = await refused(node.call("GetTask", {"id": "nope"}))
    assert (missing.code, missing.reason, missing.domain) == (
        Code.NOT_FOUND,
        "TASK_NOT_FOUND",
        DOMAIN,
    )
    assert missing.metadata == {"taskId": "nope"}
    unsupported = await refused(node.call("SendMessage", message("raise:-32004")))
    assert (unsupported.code, unsupported.reason) == (
        Code.FAILED_PRECONDITION,
        "UNSUPPORTED_OPERATION",
    )
    not_cancelable = await refused(node.call("SendMessage", message("raise:-32002")))
    assert (not_cancelable.code, not_cancelable.reason) == (
        Code.FAILED_PRECONDITION,
        "TASK_NOT_CANCELABLE",
    )
    crashed = await refused(node.call("SendMessage", message("crash")))
    assert (crashed.code, crashed.reason, crashed.message) == (
        Code.INTERNAL,
        "INTERNAL",
        "internal error",
    )
    assert SECRET not in str(crashed)


async def test_a_request_that_does_not_validate_is_invalid_argument(
    serve: Serve, handler: FakeHandler
) -> None:
    node = (await serve(handler)).caller()
    no_parts = {"message": {"messageId": "m-1", "role": "ROLE_USER"}}
    invalid = await refused(node.call("SendMessage", no_parts))
    assert (invalid.code, invalid.reason) == (Code.INVALID_ARGUMENT, "INVALID_PARAMS")
    assert "parts" in invalid.message
    bad_state = await refused(node.call("ListTasks", {"pageSize": 100_000}))
    assert (bad_state.code, bad_state.reason) == (Code.INVALID_ARGUMENT, "INVALID_PARAMS")
    assert handler.calls == []


async def test_a2a_version_is_matched_by_major_minor(serve: Serve, handler: FakeHandler) -> None:
    node = (await serve(handler)).caller()
    for version in ("1.0", "1.0.1", ""):
        assert (await node.call("GetTask", {"id": "t1"}, (("a2a-version", version),)))["id"]
    for version in ("0.3", "2.0", "x"):
        old = await refused(node.call("GetTask", {"id": "t1"}, (("a2a-version", version),)))
        assert (old.code, old.reason) == (Code.FAILED_PRECONDITION, "VERSION_NOT_SUPPORTED")
        assert old.metadata == {"supported": "1.0"}


async def test_operations_the_card_rules_out_are_refused_before_the_handler(
    serve: Serve, handler: FakeHandler
) -> None:
    node = (await serve(handler, NO_CAPS)).caller()
    stream = await refused(node.stream("SendStreamingMessage", message()))
    assert (stream.code, stream.reason) == (Code.FAILED_PRECONDITION, "UNSUPPORTED_OPERATION")
    subscribe = await refused(node.stream("SubscribeToTask", {"id": "t1"}))
    assert subscribe.reason == "UNSUPPORTED_OPERATION"
    push = await refused(node.call("ListTaskPushNotificationConfigs", {"taskId": "t1"}))
    assert (push.code, push.reason) == (Code.FAILED_PRECONDITION, "PUSH_NOTIFICATION_NOT_SUPPORTED")
    card = await refused(node.call("GetExtendedAgentCard", {}))
    assert (card.code, card.reason) == (Code.FAILED_PRECONDITION, "UNSUPPORTED_OPERATION")
    assert handler.calls == []


async def test_a_message_over_the_body_limit_is_refused_unread(
    serve: Serve, handler: FakeHandler
) -> None:
    limits = Limits(max_body_bytes=4096)
    node = (await serve(handler, limits=limits)).caller()
    assert len(raw_request("SendMessage", message("x" * 5000))) > 4096
    too_big = await refused(node.call("SendMessage", message("x" * 5000)))
    assert too_big.code == Code.RESOURCE_EXHAUSTED
    assert (await node.call("SendMessage", message("x" * 1000)))["task"]
    assert len(handler.calls) == 1


class SlowHandler(FakeHandler):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send_message(self, request: Any, ctx: Any) -> Any:
        await self.release.wait()
        return await super().send_message(request, ctx)


async def test_one_caller_s_requests_in_flight_are_capped_across_bindings(serve: Serve) -> None:
    handler = SlowHandler()
    guard = Guard(require_identity=True, max_concurrent_per_caller=2)
    served = await serve(handler, guard=guard)
    alice, bob = served.caller("alice"), served.caller("bob")
    # Sends that do not wait for their tasks (a blocking one counts as a stream).
    at_once = {**message(), "configuration": {"returnImmediately": True}}
    first = asyncio.create_task(alice.call("SendMessage", at_once))
    second = asyncio.create_task(alice.call("SendMessage", at_once))
    while guard.in_flight.counts(ALICE)[0] < 2:
        await asyncio.sleep(0.01)
    third = await refused(alice.call("SendMessage", at_once))
    assert (third.code, third.reason) == (Code.RESOURCE_EXHAUSTED, "TOO_MANY_REQUESTS")
    assert third.domain == "agent-node"
    bobs = asyncio.create_task(bob.call("SendMessage", message()))  # another caller's own cap
    await asyncio.sleep(0.1)
    handler.release.set()
    for call in (first, second, bobs):
        assert (await call)["task"]
    assert guard.in_flight.counts(ALICE) == (0, 0)
    assert (await alice.call("SendMessage", message()))["task"]


def test_the_card_lists_grpc_only_when_it_is_served() -> None:
    def interfaces(**fields: Any) -> list[tuple[str, str, str]]:
        card = build_card(NodeConfig(name="n", **fields), {})
        return [
            (i["url"], i["protocolBinding"], i["protocolVersion"])
            for i in card["supportedInterfaces"]
        ]

    http = [
        ("http://127.0.0.1:8470/a2a", "JSONRPC", "1.0"),
        ("http://127.0.0.1:8470/a2a", "HTTP+JSON", "1.0"),
        ("http://127.0.0.1:8470/a2a", "JSONRPC", "0.3"),
    ]
    assert interfaces() == http
    grpc_too = interfaces(listen={"grpc_port": 8471})
    assert grpc_too == [*http[:2], ("127.0.0.1:8471", "GRPC", "1.0"), http[2]]
    public = interfaces(listen={"grpc_port": 8471}, public_url="https://n.example.org")
    assert public[2] == ("n.example.org:8471", "GRPC", "1.0")


async def test_a_port_in_use_is_a_clear_error(serve: Serve, handler: FakeHandler) -> None:
    taken = int((await serve(handler)).target.rpartition(":")[2])
    with pytest.raises(ConfigError, match=f"cannot listen for gRPC on 127.0.0.1:{taken}"):
        bind("127.0.0.1", taken, Limits())


# Mutual TLS


async def test_the_caller_is_its_certificate_s_uri_san(serve: Serve, handler: FakeHandler) -> None:
    served = await serve(handler)
    await served.caller("bob").call("GetTask", {"id": "t1"})
    assert handler.calls[-1][2].caller == "spiffe://example.org/agent/bob"


async def test_a_certificate_naming_no_identity_is_unauthenticated(
    serve: Serve, handler: FakeHandler
) -> None:
    served = await serve(handler)
    nameless = await refused(served.caller("nameless").call("GetTask", {"id": "t1"}))
    assert (nameless.code, nameless.reason) == (Code.UNAUTHENTICATED, "UNAUTHENTICATED")
    assert "client certificate" in nameless.message
    assert handler.calls == []


async def test_no_certificate_is_unauthenticated_and_another_ca_s_fails_the_handshake(
    serve: Serve, handler: FakeHandler, rogue: Path
) -> None:
    """As on HTTPS: a client certificate is asked for, not required at the
    handshake (bearer tokens and API keys come over server TLS); without one,
    and no other credentials, the call is refused saying what is missing."""
    served = await serve(handler)
    anonymous = await refused(served.caller(None).call("GetTask", {"id": "t1"}))
    assert (anonymous.code, anonymous.reason) == (Code.UNAUTHENTICATED, "UNAUTHENTICATED")
    assert "client certificate" in anonymous.message
    impostor = await refused(served.caller("alice", rogue).call("GetTask", {"id": "t1"}))
    assert impostor.code == Code.UNAVAILABLE
    assert handler.calls == []


# The operations end to end, on the task service


@pytest.fixture
async def node(durable_url: str, serve: Serve) -> AsyncIterator[Caller]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        service = TaskService(runtime, {"greet": greeter().compile(), "book": book})
        service.push = PushSender(
            runtime.store, service.render_push, PushSettings(allow=["127.0.0.0/8"]), owner="t"
        )
        served = await serve(service, ALL_CAPS)
        yield served.caller()


def booking(text: str = "Lisbon", task_id: str | None = None) -> dict[str, Any]:
    ask = message(text)
    ask["message"]["metadata"] = {"skill": "book"}
    if task_id:
        ask["message"]["taskId"] = task_id
    return ask


async def test_an_id_holding_nul_is_invalid_argument(node: Caller) -> None:
    """PostgreSQL's text cannot hold a NUL: such an id was an internal error there."""
    nul_context = message()
    nul_context["message"]["contextId"] = "c\x00"
    for method, params, field in (
        ("GetTask", {"id": "t\x00"}, "id"),
        ("ListTasks", {"contextId": "c\x00"}, "contextId"),
        ("SendMessage", nul_context, "message.contextId"),
    ):
        invalid = await refused(node.call(method, params))
        assert (invalid.code, invalid.reason) == (Code.INVALID_ARGUMENT, "INVALID_PARAMS")
        assert invalid.message == f"{field}: an id cannot hold a NUL character (U+0000)"


async def test_send_get_list_cancel_over_grpc(node: Caller) -> None:
    task = (await node.call("SendMessage", message("hi")))["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "Hello! You said: hi" in str(task["artifacts"][0]["parts"])
    got = await node.call("GetTask", {"id": task["id"], "historyLength": 0})
    assert got["id"] == task["id"] and not got.get("history")
    listed = await node.call("ListTasks", {"contextId": task["contextId"]})
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    none = await node.call("ListTasks", {"status": "TASK_STATE_WORKING"})
    assert none.get("tasks", []) == []
    asked = (await node.call("SendMessage", booking()))["task"]
    assert asked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    canceled = await node.call("CancelTask", {"id": asked["id"]})
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    again = await refused(node.call("CancelTask", {"id": asked["id"]}))
    assert (again.code, again.reason) == (Code.FAILED_PRECONDITION, "TASK_NOT_CANCELABLE")


async def test_a_part_the_skill_does_not_take_is_invalid_argument(node: Caller) -> None:
    picture = {"raw": "iVBORw0KGgo=", "mediaType": "image/png"}
    sent = message("hi")
    sent["message"]["parts"].append(picture)
    said = await refused(node.call("SendMessage", sent))
    assert (said.code, said.reason) == (Code.INVALID_ARGUMENT, "CONTENT_TYPE_NOT_SUPPORTED")
    assert "part 1 (image/png)" in said.message
    assert said.metadata["mediaTypes"] == "image/png"
    assert (await node.call("ListTasks", {})).get("tasks", []) == []


async def test_streams_are_stream_responses(node: Caller) -> None:
    streamed = await node.stream("SendStreamingMessage", message("hi"))
    assert "task" in streamed[0]
    assert streamed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    asked = (await node.call("SendMessage", booking()))["task"]
    subscribed = asyncio.create_task(node.stream("SubscribeToTask", {"id": asked["id"]}))
    await asyncio.sleep(0.3)  # subscribed: answer the question, which ends the stream
    await node.call("SendMessage", booking("early May", asked["id"]))
    followed = await asyncio.wait_for(subscribed, 30)
    assert followed[0]["task"]["id"] == asked["id"]
    assert followed[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    done = await refused(node.stream("SubscribeToTask", {"id": streamed[0]["task"]["id"]}))
    assert (done.code, done.reason) == (Code.FAILED_PRECONDITION, "UNSUPPORTED_OPERATION")


async def test_push_config_crud_over_grpc(node: Caller) -> None:
    task_id = (await node.call("SendMessage", booking()))["task"]["id"]
    config = {"taskId": task_id, "id": "p1", "url": "https://127.0.0.1:9/hook", "token": "tok"}
    created = await node.call("CreateTaskPushNotificationConfig", config)
    assert (created["taskId"], created["id"], created["url"]) == (task_id, "p1", config["url"])
    ids = {"taskId": task_id, "id": "p1"}
    assert (await node.call("GetTaskPushNotificationConfig", ids))["token"] == "tok"
    listed = await node.call("ListTaskPushNotificationConfigs", {"taskId": task_id})
    assert [c["id"] for c in listed["configs"]] == ["p1"]
    for _ in range(2):  # deleting is idempotent
        assert await node.call("DeleteTaskPushNotificationConfig", ids) == {}
    listed = await node.call("ListTaskPushNotificationConfigs", {"taskId": task_id})
    assert listed.get("configs", []) == []
    missing = await refused(
        node.call("GetTaskPushNotificationConfig", {"taskId": "nope", "id": "p1"})
    )
    assert (missing.code, missing.reason) == (Code.NOT_FOUND, "TASK_NOT_FOUND")


async def test_the_policy_holds_over_grpc(serve: Serve, tmp_path: Path) -> None:
    from agent_node.security.authz import Policy
    from agent_node.settings import PolicySettings

    policy = Policy.of(PolicySettings(skills={"book": ["spiffe://example.org/agent/bob"]}))
    async with Runtime(f"sqlite:///{tmp_path}/s.db", scope="all", poll_interval=0.05) as runtime:
        book = load_workflow(str(ROOT / "examples/greeter/book.py") + ":wf")
        workflows = {"greet": greeter().compile(), "book": book}
        service = TaskService(runtime, workflows, default_skill="greet", policy=policy)
        served = await serve(service, ALL_CAPS)
        alice, bob = served.caller("alice"), served.caller("bob")
        forbidden = await refused(alice.call("SendMessage", booking()))
        assert (forbidden.code, forbidden.reason) == (Code.PERMISSION_DENIED, "PERMISSION_DENIED")
        bobs = (await bob.call("SendMessage", booking()))["task"]
        hidden = await refused(alice.call("GetTask", {"id": bobs["id"]}))
        assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "TASK_NOT_FOUND")
        assert (await alice.call("ListTasks", {})).get("tasks", []) == []
        assert [t["id"] for t in (await bob.call("ListTasks", {}))["tasks"]] == [bobs["id"]]


# A node serving gRPC


async def test_sigterm_stops_a_node_serving_grpc_with_its_calls_in_flight(
    tmp_path: Path, certs: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from support.nodes import greeter_config

    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--grpc-port", "0"]
    command += ["--config", str(greeter_config(tmp_path))]
    command += ["--cert-dir", str(certs), "--identity", "node"]
    err = (tmp_path / "node.err").open("w")
    node = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert node.stdout is not None
        lines = [node.stdout.readline() for _ in range(3)]
        assert lines[2].startswith("A2A gRPC: 127.0.0.1:"), lines
        alice = Served(lines[2].split()[-1], certs).caller("alice")
        asked = (await alice.call("SendMessage", booking()))["task"]
        assert asked["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        following = asyncio.create_task(alice.stream("SubscribeToTask", {"id": asked["id"]}))
        await asyncio.sleep(0.3)
        assert not following.done()
        started = time.monotonic()
        node.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError):  # the open stream is ended by the stop
            await asyncio.wait_for(following, 15)
        out, _ = await asyncio.to_thread(node.communicate, timeout=20)
        assert node.returncode == 0
        assert time.monotonic() - started < 12  # the 5 s grace, then the rest closes
        assert "stopped" in out
        assert "Traceback" not in (tmp_path / "node.err").read_text()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        err.close()


async def test_metadata_over_the_header_limit_is_refused_unread(
    serve: Serve, handler: FakeHandler
) -> None:
    node = (await serve(handler, limits=Limits(max_header_bytes=2048))).caller()
    big = await refused(node.call("GetTask", {"id": "t1"}, (("x-big", "x" * 4096),)))
    assert big.code == Code.RESOURCE_EXHAUSTED, big
    assert handler.calls == []
    assert (await node.call("GetTask", {"id": "t1"}, (("x-small", "x" * 512),)))["id"] == "t1"
