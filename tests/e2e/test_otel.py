"""OpenTelemetry traces from real node processes (issue 17), exported by the
real OTLP/HTTP exporter into a receiver the test runs.

* A → B → C over mutual TLS, C's model node answering through litellm and
  the fake Ollama: one trace, every span's parent in it (but the caller's
  span the test made up), each delegation's CLIENT span the parent of the
  peer's execution span, the GenAI attributes on C's model call, the starts
  the stores recorded.
* A node SIGKILLed while a step runs, then restarted: the execution
  completes and its trace is still whole — its span once, each visit's once
  with the start its first attempt recorded (before the kill), no parent
  missing.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import CLI, FIVE_STEPS, Child, Spawn, child_env, opened, wait_until
from e2e.test_delegation import V10, Net, client
from support.certs import make_certs
from support.effects import Effects
from support.fake_ollama import MODEL, FakeOllama, serving, text
from support.otlp import OtlpReceiver, ReceivedSpan, receiving
from support.workflows import WRITER_YAML

from agent_node.store.records import EventRecord

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ANSWER = "Every hop of this answer is one trace."
#: The caller's own span: sent in ``traceparent``, never exported.
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A receiver, and the variables that point the nodes (children of this
    process) at it, with a short batch delay."""
    with receiving() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        yield receiver


@pytest.fixture
def net(tmp_path: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, make_certs(tmp_path / "certs", "a", "b", "c", "alice"), spawn)


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with serving(default=text(ANSWER)) as fake:
        yield fake


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def executions(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    """Execution spans by execution id."""
    found: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        if span.attributes.get("gen_ai.operation.name") == "invoke_agent" and (
            span.kind == "INTERNAL"
        ):
            found.setdefault(span.attributes["agent_node.execution.id"], []).append(span)
    return found


def only(spans: list[ReceivedSpan], **want: Any) -> ReceivedSpan:
    """The one span with these fields (``attributes`` compared key by key)."""
    wanted_attributes = want.pop("attributes", {})
    found = [
        s
        for s in spans
        if all(getattr(s, k) == v for k, v in want.items())
        and all(s.attributes.get(k) == v for k, v in wanted_attributes.items())
    ]
    assert len(found) == 1, f"{len(found)} spans with {want} {wanted_attributes}: {spans}"
    return found[0]


def dangling(spans: list[ReceivedSpan], allowed: set[str]) -> list[ReceivedSpan]:
    ids = {s.span_id for s in spans}
    return [s for s in spans if s.parent_id is not None and s.parent_id not in ids | allowed]


def first_starts(events: list[EventRecord]) -> dict[tuple[str, int], float]:
    starts: dict[tuple[str, int], float] = {}
    for event in events:
        if event.kind == "node_started" and event.node is not None:
            starts.setdefault((event.node, event.visit or 0), event.at)
    return starts


async def recorded(url: str, execution_id: str) -> tuple[float, dict[tuple[str, int], float]]:
    """An execution's creation time and its visits' first starts, from its store."""
    async with opened(url) as store:
        record = await store.get(execution_id)
        events = await store.events(execution_id)
    assert record is not None
    return record.created_at, first_starts(events)


def visits_of(
    spans: list[ReceivedSpan], execution: ReceivedSpan
) -> dict[tuple[str, int], ReceivedSpan]:
    """The visit spans of an execution, by (node, visit), each found once."""
    found: dict[tuple[str, int], ReceivedSpan] = {}
    for span in spans:
        if span.parent_id == execution.span_id and span.trace_id == execution.trace_id:
            key = (
                span.attributes["agent_node.node.id"],
                span.attributes.get("agent_node.visit", 1),
            )
            assert key not in found, f"{key} twice: {span} and {found[key]}"
            found[key] = span
    return found


def assert_starts(spans: list[ReceivedSpan], execution: ReceivedSpan, starts: Any) -> None:
    """The execution's span starts when it was created, each visit's when its
    first attempt did; every visit the log has, has its span."""
    created, visits = starts
    assert execution.start == pytest.approx(created, abs=1e-5)
    found = visits_of(spans, execution)
    assert set(found) == set(visits)
    for key, at in visits.items():
        assert found[key].start == pytest.approx(at, abs=1e-5), key


async def test_a_chain_of_three_agents_is_one_trace(
    net: Net, ollama: FakeOllama, otlp: OtlpReceiver
) -> None:
    writer = net.root / "writer.yaml"
    writer.write_text(WRITER_YAML)
    models = f"models: {{default: 'ollama_chat/{MODEL}', api_base: '{ollama.url}'}}\n"
    net.configure("c", {"write": writer}, [], extra=models)
    net.configure("b", {"relay": net.relay("b", "c", "write", as_text=True, keep="text")}, ["c"])
    net.configure("a", {"relay": net.relay("a", "b", "relay", as_text=True)}, ["b"])
    for name in ("c", "b", "a"):
        await net.start(name)

    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "One trace?"}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    headers = {**V10, "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
    async with client(net.certs) as http:
        answer = (await http.post(f"{net.url('a')}/a2a", json=body, headers=headers)).json()
    task = answer["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task

    def three_executions_ended() -> bool:
        ended = executions(in_trace(otlp.spans(), TRACE))
        return {s.service for spans in ended.values() for s in spans} == {"a", "b", "c"}

    await wait_until(three_executions_ended, "the execution spans of a, b and c", timeout=30)
    await wait_until(  # the request spans end with their answers, a little later
        lambda: (
            {s.service for s in otlp.spans() if s.kind == "SERVER" and s.trace_id == TRACE}
            == {"a", "b", "c"}
        ),
        "the request spans of a, b and c",
        timeout=10,
    )
    spans = in_trace(otlp.spans(), TRACE)

    # One execution span each; A's hangs under the caller's span.
    ran = executions(spans)
    assert sorted(len(v) for v in ran.values()) == [1, 1, 1], ran
    by_node = {v[0].service: v[0] for v in ran.values()}
    assert by_node["a"].attributes["agent_node.execution.id"] == task["id"]
    assert by_node["a"].parent_id == CALLER_SPAN
    assert by_node["a"].name == "invoke_agent a" and by_node["a"].status == "UNSET"
    # Every parent is in the trace but the caller's span.
    assert dangling(spans, {CALLER_SPAN}) == []
    # A's delegation span is B's execution's parent, B's is C's.
    for caller, callee in (("a", "b"), ("b", "c")):
        delegation = only(spans, service=caller, kind="CLIENT", name=f"invoke_agent {callee}")
        visit = visits_of(spans, by_node[caller])[("ask", 1)]
        assert delegation.parent_id == visit.span_id
        assert visit.parent_id == by_node[caller].span_id
        assert by_node[callee].parent_id == delegation.span_id
        peer_task = by_node[callee].attributes["agent_node.execution.id"]
        assert delegation.attributes["agent_node.peer"] == callee
        assert delegation.attributes["agent_node.peer.task_id"] == peer_task
        assert delegation.attributes["server.address"] == "127.0.0.1"
        # The peer's request span and this node's HTTP span hang there too.
        server = only(
            spans,
            service=callee,
            kind="SERVER",
            name="A2A SendMessage",
            parent_id=delegation.span_id,
        )
        assert server.attributes["http.response.status_code"] == 200
        sent = [
            s
            for s in spans
            if s.service == caller and s.kind == "CLIENT" and s.name == "A2A SendMessage"
        ]
        assert sent and all(s.parent_id == delegation.span_id for s in sent)
        assert delegation.start <= by_node[callee].start <= by_node[callee].end <= delegation.end
    # The caller's request to A: a SERVER span under the caller's span.
    only(spans, service="a", kind="SERVER", name="A2A SendMessage", parent_id=CALLER_SPAN)

    # C's model call, by the GenAI conventions, under its visit.
    chat = only(spans, service="c", kind="CLIENT", name=f"chat {MODEL}")
    write = only(spans, service="c", kind="INTERNAL", name="model write")
    assert chat.parent_id == write.span_id and write.parent_id == by_node["c"].span_id
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == MODEL
    assert chat.attributes["gen_ai.response.model"] == MODEL
    assert chat.attributes["gen_ai.provider.name"] == "ollama"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert write.start <= chat.start <= chat.end <= write.end

    # Starts and parents as each store recorded them.
    for name, execution in by_node.items():
        execution_id = execution.attributes["agent_node.execution.id"]
        assert_starts(spans, execution, await recorded(net.store(name), execution_id))


def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: steps\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{tmp_path}/steps.db\n"
        f"skills:\n  - {{id: five, workflow: '{FIVE_STEPS}', default: true}}\n"
    )
    return path


async def start(spawn: Spawn, name: str, conf: Path, env: dict[str, str]) -> tuple[Child, str]:
    node = spawn(name, [*CLI, "serve", "--insecure-dev", "--config", str(conf)], env)
    await wait_until(
        lambda: "listening on" in node.out(), f"{name} to listen", timeout=30, alive=[node]
    )
    return node, node.out().splitlines()[0].split()[-1]


def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = httpx.post(f"{url}/a2a", json=body, headers=V10, timeout=10).json()
    assert "result" in answer, answer
    result: dict[str, Any] = answer["result"]
    return result


async def test_a_trace_survives_a_kill_and_the_resume(
    spawn: Spawn, tmp_path: Path, otlp: OtlpReceiver
) -> None:
    effects = Effects(tmp_path / "effects.db")
    env = child_env(tmp_path / "effects.db", step_sleep=1.0)
    conf = config(tmp_path)
    node, url = await start(spawn, "steps-1", conf, env)
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"item": 1}}]}
    params = {"message": message, "configuration": {"returnImmediately": True}}
    execution_id = rpc(url, "SendMessage", params)["task"]["id"]

    def visits_done(*names: str) -> bool:
        done = {s.attributes.get("agent_node.node.id") for s in otlp.spans()}
        return set(names) <= done

    # step1 and step2 exported, step3 running: then the kill.
    await wait_until(lambda: visits_done("step1", "step2"), "step1 and step2's spans", timeout=30)
    await wait_until(lambda: len(effects.invocations()) >= 3, "step3 to run", timeout=10)
    node.send(signal.SIGKILL)
    assert node.wait(10) == -signal.SIGKILL
    _, url = await start(spawn, "steps-2", conf, env)
    await wait_until(
        lambda: (
            rpc(url, "GetTask", {"id": execution_id})["status"]["state"] == "TASK_STATE_COMPLETED"
        ),
        "the task to complete after the restart",
        timeout=60,
    )
    await wait_until(
        lambda: execution_id in executions(otlp.spans()), "the execution's span", timeout=30
    )

    (execution,) = executions(otlp.spans())[execution_id]
    spans = in_trace(otlp.spans(), execution.trace_id)
    # The node made the trace up: the execution is its root, nothing dangles.
    assert execution.parent_id is None
    assert dangling(spans, set()) == []
    visits = visits_of(spans, execution)
    assert sorted(visits) == [(f"step{n}", 1) for n in range(1, 6)]
    step3 = visits[("step3", 1)]
    assert step3.attributes["agent_node.attempts"] == 2
    assert all(
        "agent_node.attempts" not in v.attributes for k, v in visits.items() if k[0] != "step3"
    )
    # Two processes emitted the trace: before the kill and after it.
    assert len({s.instance for s in visits.values()}) == 2
    url = f"sqlite:///{tmp_path}/steps.db"
    assert_starts(spans, execution, await recorded(url, execution_id))
    async with opened(url) as store:
        events = await store.events(execution_id)
    restarts = [e.at for e in events if e.kind == "node_started" and e.node == "step3"]
    assert len(restarts) == 2 and step3.start == pytest.approx(restarts[0], abs=1e-5)
    assert step3.start < restarts[1] < step3.end
