"""Traces without node processes: the derived ids, the ledger that follows
commits (and reads a log back when memory is not enough), the spans built
from what it says ended, and the request spans — these exported for real,
into an OTLP receiver on a loopback port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.otlp import OtlpReceiver, ReceivedSpan, decode, receiving, span_factory

from agent_node import Workflow
from agent_node.errors import ConfigError
from agent_node.nodes.delegate import DelegateNode
from agent_node.nodes.model_spec import ModelNode
from agent_node.runtime import Runtime
from agent_node.scope import OPERATION
from agent_node.settings_telemetry import TelemetrySettings, TracesSettings
from agent_node.store.records import EventRecord, ExecutionRecord
from agent_node.telemetry.metrics import NodeMetrics
from agent_node.telemetry.traces import start_traces, traces_wanted
from agent_node.telemetry.traces_calls import provider_and_model
from agent_node.telemetry.traces_http import A2A_METHODS, RequestSpans, roots_sampled, span_name
from agent_node.telemetry.traces_ids import (
    call_span_id,
    execution_span_id,
    execution_span_ids,
    origin_of,
    parse_traceparent,
    visit_span_id,
)
from agent_node.telemetry.traces_ledger import (
    ExecutionEnd,
    Ledger,
    VisitEnd,
    replayed,
    visit_end,
)
from agent_node.telemetry.traces_pipeline import bundled_sizes
from agent_node.telemetry.traces_spans import SpanFactory
from agent_node.tracing import child_traceparent
from agent_node.workflow.ir import NodeSpec, PythonNode

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
PARENT = f"00-{TRACE}-{CALLER}-01"


def sha(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def halves(execution_id: str) -> tuple[int, int]:
    both = hashlib.blake2b(execution_id.encode(), digest_size=16, person=b"execution").digest()
    return int.from_bytes(both[:8], "big"), int.from_bytes(both[8:], "big")


# -- ids -------------------------------------------------------------------------


def test_ids_are_derived_from_what_the_log_names() -> None:
    # An execution's span id and its visits' half are the halves of one
    # BLAKE2b of its id (one hash an execution, not two SHA-256: they cost it
    # as much as its span). Pinned: a change of derivation splits the traces
    # of the executions that run across it (their earlier spans keep the old ids).
    assert execution_span_ids("é1") == halves("é1")
    assert execution_span_ids("e1") == (0x46DF12852A0B06B4, 0x10D42A3F487AD450)
    assert execution_span_id("e1") == halves("e1")[0]
    # A visit's: its execution's half and its node's and visit's (hashed once a node).
    assert visit_span_id("e1/ask/2") == halves("e1")[1] ^ sha("at:ask/2") == 0x401937A2F6AF7535
    assert visit_span_id("e1/ask/2") != visit_span_id("e2/ask/2") != visit_span_id("e1/ask/1")
    # A visit's calls carry the span id its traceparent already told the peer.
    sent = child_traceparent(PARENT, "e1/ask/2")
    assert call_span_id(PARENT, "e1/ask/2") == int(sent.split("-")[2], 16)
    assert sent.split("-")[1] == TRACE


def test_an_execution_hangs_under_its_caller_unless_the_node_made_its_trace_up() -> None:
    origin = origin_of(json.dumps({"caller": "x", "traceparent": PARENT}))
    assert origin is not None
    assert (origin.trace_id, origin.parent_id, origin.sampled) == (
        int(TRACE, 16),
        int(CALLER, 16),
        True,
    )
    root = origin_of(json.dumps({"traceparent": PARENT, "trace_root": True}))
    assert root is not None and root.parent_id is None and root.trace_id == int(TRACE, 16)
    unsampled = origin_of(json.dumps({"traceparent": f"00-{TRACE}-{CALLER}-00"}))
    assert unsampled is not None and not unsampled.sampled


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{CALLER}-01",  # a zero trace id
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE}-{CALLER}-01" + " " * 500,  # too long to be one
        "00-" + "a" * 10_000,
    ],
)
def test_a_bad_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None
    assert origin_of(json.dumps({"traceparent": value})) is None
    assert origin_of("{not json") is None and origin_of(None) is None


# -- the ledger --------------------------------------------------------------------


def record(metadata: dict[str, Any] | None = None, status: str = "running") -> ExecutionRecord:
    meta = {"traceparent": PARENT} if metadata is None else metadata
    return ExecutionRecord(
        "e1",
        "wf",
        "1",
        None,
        status,
        "{}",
        "{}",
        0,
        None,
        "ctx",
        json.dumps(meta),
        10.0,
        10.0,  # type: ignore[arg-type]
    )


class Log:
    """Events of execution ``e1``, numbered as a store would."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []

    def __call__(
        self,
        event_kind: str,
        at: float,
        node: str | None = None,
        visit: int | None = None,
        attempt: int | None = None,
        **data: Any,
    ) -> EventRecord:
        event = EventRecord(
            "e1",
            len(self.events) + 1,
            event_kind,
            node,
            visit,
            attempt,
            at,
            json.dumps(data) if data else None,
        )
        self.events.append(event)
        return event


def test_a_visit_ends_with_its_first_start_and_its_failed_attempts() -> None:
    ledger, log = Ledger(), Log()
    assert ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "a", 1, 1)]
    ) == ([], None)
    failed = log(
        "node_failed", 10.5, "a", 1, 1, error="boom", type="ValueError", retry_at=11.0, duration=0.4
    )
    assert ledger.committed(record(), [failed]) == ([], None)
    ends, replay = ledger.committed(
        record(),
        [
            log("node_started", 11.0, "a", 1, 2),
            log("node_completed", 11.2, "a", 1, next=None, duration=0.2),
        ],
    )
    assert replay is None
    [end] = ends
    assert isinstance(end, VisitEnd)
    assert (end.visit.start, end.at, end.outcome, end.visit.attempt) == (10.1, 11.2, "completed", 2)
    assert [(at, attempt) for at, attempt, _ in end.visit.failures] == [(10.5, 1)]
    ends, _ = ledger.committed(record(status="completed"), [log("execution_completed", 11.3)])
    assert [type(e) for e in ends] == [ExecutionEnd] and len(ledger) == 0


def test_a_visit_that_failed_for_good_ends_failed() -> None:
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "a", 1, 1)]
    )
    ends, _ = ledger.committed(
        record(status="failed"),
        [
            log(
                "node_failed",
                10.2,
                "a",
                1,
                1,
                error="no",
                type="KeyError",
                retry_at=None,
                duration=0.1,
            ),
            log("execution_failed", 10.2, error="node 'a' failed: no"),
        ],
    )
    visit, execution = ends
    assert isinstance(visit, VisitEnd) and visit.outcome == "failed" and visit.visit.start == 10.1
    assert isinstance(execution, ExecutionEnd) and execution.status == "failed"


def test_after_a_restart_the_start_is_read_back_from_the_log() -> None:
    """The first process saw attempt 1 start and died; the second sees
    attempt 2: it does not guess, it asks for the log."""
    log = Log()
    before = [log("execution_started", 10.0), log("node_started", 10.1, "a", 1, 1)]
    ledger = Ledger()  # the restarted process: it saw none of that
    ends, replay = ledger.committed(
        record(),
        [log("node_started", 20.0, "a", 1, 2), log("node_completed", 20.5, "a", 1, next="b")],
    )
    assert ends == [] and replay is not None and replay.visits == {("a", 1)}
    [end] = replayed(replay, [*before, *log.events[2:]])
    assert (end.visit.start, end.at, end.visit.attempt, end.visit.whole) == (10.1, 20.5, 2, True)
    # A visit it saw start from attempt 1 needs no read-back.
    ends, replay = ledger.committed(
        record(),
        [log("node_started", 20.6, "b", 1, 1), log("node_completed", 20.7, "b", 1, next=None)],
    )
    assert replay is None and [visit_end(e).visit.start for e in ends if isinstance(e, tuple)] == [
        20.6
    ]


def test_visits_open_when_the_execution_ends_end_with_it() -> None:
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "ask", 1, 1)]
    )
    ledger.committed(record(), [log("wait_started", 10.2, "ask", 1, kind="delegation")])
    ends, replay = ledger.committed(
        record(status="canceled"), [log("execution_canceled", 12.0, reason="stop")]
    )
    assert replay is None
    _, visit = ends
    assert isinstance(visit, VisitEnd) and (visit.outcome, visit.at, visit.visit.start) == (
        "canceled",
        12.0,
        10.1,
    )
    assert [kind for _, kind, _ in visit.visit.notes] == ["wait_started"]
    # Followed from the middle, the open visits are read back instead.
    ends, replay = Ledger().committed(record(status="canceled"), [log.events[-1]])
    assert [type(e) for e in ends] == [ExecutionEnd] and replay is not None and replay.open_at_end
    [again] = replayed(replay, log.events)
    assert (again.visit.node, again.outcome, again.visit.start) == ("ask", "canceled", 10.1)


def test_untraced_and_unsampled_executions_cost_a_lookup_and_are_forgotten() -> None:
    for metadata in ({}, {"traceparent": f"00-{TRACE}-{CALLER}-00"}):
        ledger, log = Ledger(), Log()
        start = [log("execution_started", 10.0), log("node_started", 10.1, "a", 1, 1)]
        assert ledger.committed(record(metadata), start) == ([], None)
        done = [log("node_completed", 10.2, "a", 1), log("execution_completed", 10.2)]
        assert ledger.committed(record(metadata, "completed"), done) == ([], None)
        assert len(ledger) == 0


def test_memory_is_bounded_and_what_it_forgot_is_read_back() -> None:
    ledger, log = Ledger(limit=1), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "a", 1, 1)]
    )
    other = record()
    other.id = "e2"
    ledger.committed(
        other, [EventRecord("e2", 1, "execution_started", None, None, None, 10.0, None)]
    )
    assert len(ledger) == 1
    ends, replay = ledger.committed(record(), [log("node_completed", 10.3, "a", 1)])
    assert ends == [] and replay is not None and replay.visits == {("a", 1)}


# -- spans -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("ollama_chat/llama3.2:1b", ("ollama", "llama3.2:1b")),
        ("openai/gpt-4o", ("openai", "gpt-4o")),
        ("hosted_vllm/meta-llama/Llama-3", ("hosted_vllm", "meta-llama/Llama-3")),
        ("gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("claude-sonnet-4", ("anthropic", "claude-sonnet-4")),
        ("scripted/echo", ("scripted", "echo")),
        ("mystery", (None, "mystery")),
    ],
)
def test_the_provider_and_the_model_s_own_name(
    model: str, expected: tuple[str | None, str]
) -> None:
    assert provider_and_model(model) == expected


@pytest.mark.parametrize(
    ("method", "path", "head", "name"),
    [
        (
            "POST",
            "/a2a",
            b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}',
            "A2A SendMessage",
        ),
        ("POST", "/a2a", b'{"jsonrpc": "2.0", "method": "tasks/get"}', "A2A GetTask"),
        ("POST", "/a2a", b'{"method":"DropAllTables"}', "POST /a2a"),  # not a name a caller picks
        ("POST", "/a2a", b"", "POST /a2a"),
        ("POST", "/a2a/message:send", b"", "A2A SendMessage"),
        ("GET", "/a2a/acme/tasks/t1", b"", "A2A GetTask"),
        ("POST", "/a2a/tasks/t1:cancel", b"", "A2A CancelTask"),
        ("GET", "/a2a/tasks", b"", "A2A ListTasks"),
        (
            "POST",
            "/a2a/tasks/t1/pushNotificationConfigs",
            b"",
            "A2A CreateTaskPushNotificationConfig",
        ),
        (
            "GET",
            "/a2a/tasks/t1/pushNotificationConfigs/c1",
            b"",
            "A2A GetTaskPushNotificationConfig",
        ),
        ("POST", "/a2a/push", b"", "POST /a2a/push"),
        ("GET", "/.well-known/agent-card.json", b"", "GET /.well-known/agent-card.json"),
        ("GET", "/ops/executions/123", b"", "GET /ops"),
        ("GET", "/anything/else/" + "x" * 100, b"", "GET"),
        # A method OpenTelemetry's conventions do not know is HTTP, and names no operation.
        ("FOO", "/a2a", b'{"method": "SendMessage"}', "HTTP /a2a"),
        ("PURGE", "/a2a/tasks/t1", b"", "HTTP"),
        ("get", "/.well-known/agent-card.json", b"", "HTTP /.well-known/agent-card.json"),
        ("M" * 30_000, "/ops/executions/123", b"", "HTTP /ops"),
    ],
)
def test_request_spans_are_named_from_a_closed_set(
    method: str, path: str, head: bytes, name: str
) -> None:
    assert span_name(method, path, head)[0] == name


# -- exported for real --------------------------------------------------------------


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with receiving() as receiver:
        yield receiver


def test_traces_are_on_when_asked_or_when_an_endpoint_is_known() -> None:
    off = TracesSettings()
    assert not traces_wanted(off, {})
    assert traces_wanted(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert traces_wanted(off, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not traces_wanted(
        off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}
    )
    assert not traces_wanted(
        off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert traces_wanted(TracesSettings(endpoint="http://c:4318/v1/traces"), {})
    assert traces_wanted(TracesSettings(enabled=True), {})
    assert not traces_wanted(
        TracesSettings(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}
    )


def test_off_means_nothing_imported() -> None:
    """A node without traces never imports OpenTelemetry (nor subscribes:
    ``start_traces`` gives nothing to subscribe)."""
    code = (
        "import sys, agent_node.node\n"
        "from agent_node.runtime import Runtime\n"
        "from agent_node.settings_telemetry import TelemetrySettings\n"
        "from agent_node.telemetry.traces import start_traces\n"
        "assert start_traces(TelemetrySettings(), node='n', runtime=Runtime('memory://')) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_traces_asked_for_without_opentelemetry_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace.export", None)
    monkeypatch.delitem(sys.modules, "agent_node.telemetry.traces_pipeline", raising=False)
    settings = TelemetrySettings.model_validate({"traces": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"pip install 'agent-node\[otel\]'"):
        start_traces(settings, node="n", runtime=Runtime("memory://"))


def app_and_traces(otlp: OtlpReceiver) -> tuple[Any, Any]:
    async def echo(request: Request) -> JSONResponse:
        payload = await request.json()
        if payload.get("method") in A2A_METHODS:  # as a binding names what it resolved
            request.scope[OPERATION] = payload["method"]
        return JSONResponse(payload)

    settings = TelemetrySettings.model_validate({"traces": {"endpoint": otlp.url}})
    traces = start_traces(settings, node="unit", runtime=Runtime("memory://"))
    assert traces is not None
    return traces.asgi(Starlette(routes=[Route("/a2a", echo, methods=["POST"])])), traces


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


async def test_a_request_span_hangs_under_the_caller_s_traceparent_and_ignores_a_bad_one(
    otlp: OtlpReceiver,
) -> None:
    app, traces = app_and_traces(otlp)
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://n") as http:
        for header in (PARENT, "00-zz-nonsense", "x" * 8000):
            answer = await http.post("/a2a", json=body, headers={"traceparent": header})
            assert answer.json() == body  # the app read the whole body, untouched
        await http.post("/a2a", json={"jsonrpc": "2.0", "method": "x" * 100_000})
    await traces.close()
    spans = otlp.wait_for(lambda s: len(s) == 4, "four request spans")
    traced, *roots = by_name(spans, "A2A GetTask")
    assert (traced.trace_id, traced.parent_id, traced.kind) == (TRACE, CALLER, "SERVER")
    assert traced.attributes["http.response.status_code"] == 200
    assert [s.parent_id for s in roots] == [None, None] and all(s.trace_id != TRACE for s in roots)
    assert [s.name for s in spans if s.name not in ("A2A GetTask",)] == ["POST /a2a"]


async def test_with_metrics_one_wrapper_counts_every_request_and_spans_the_traced(
    otlp: OtlpReceiver,
) -> None:
    async def echo(request: Request) -> JSONResponse:
        payload = await request.json()
        if payload.get("method") in A2A_METHODS:
            request.scope[OPERATION] = payload["method"]
        return JSONResponse(payload)

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("the app raised")

    inner = Starlette(
        routes=[Route("/a2a", echo, methods=["POST"]), Route("/healthz", boom, methods=["GET"])]
    )
    settings = TelemetrySettings.model_validate({"traces": {"endpoint": otlp.url}})
    runtime = Runtime("memory://")
    metrics = NodeMetrics(runtime.store, runtime.workflows, "unit")
    traces = start_traces(settings, node="unit", runtime=runtime)
    assert traces is not None
    app = traces.asgi(inner, metrics)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://n") as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}
        assert (await http.post("/a2a", json=body)).json() == body
        await http.post("/a2a", json={"jsonrpc": "2.0", "id": 2, "method": "Nope"})
        assert (await http.get("/healthz")).status_code == 500  # counted, no span
    await traces.close()
    spans = otlp.wait_for(lambda s: len(s) == 2, "two request spans")
    assert sorted(s.name for s in spans) == ["A2A SendMessage", "POST /a2a"]
    named = by_name(spans, "A2A SendMessage")[0]
    assert named.attributes["rpc.method"] == "SendMessage"
    text = (await metrics.scrape()).decode()
    found = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "agent_node_http_requests_total"
    }
    assert found == {
        (("code", "200"), ("method", "POST"), ("route", "a2a")): 2.0,
        (("code", "500"), ("method", "GET"), ("route", "probe")): 1.0,
    }
    metrics.close()


def test_server_span_parts_are_kept_for_short_paths_only() -> None:
    sent: list[bytes] = []
    spans = RequestSpans(roots_sampled(ParentBased(ALWAYS_ON)), sent.append)
    spans.server("POST", "/a2a", "SendMessage", "https", 200, None, 1)
    spans.server("POST", "/a2a", "SendMessage", "https", 200, None, 2)
    spans.server("GET", "/x" * 5000, None, "https", 404, None, 3)  # invented: not kept
    assert list(spans.servers) == [("POST", "/a2a", "SendMessage", "https", 200)]
    from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

    scope = ScopeSpans()
    scope.ParseFromString(b"".join(sent))  # each is a ScopeSpans.spans field
    assert [s.name for s in scope.spans] == ["A2A SendMessage", "A2A SendMessage", "GET"]
    paths = [a.value.string_value for a in scope.spans[2].attributes if a.key == "url.path"]
    assert paths == [("/x" * 5000)[:512]]


async def test_a_peer_call_carrying_a_traceparent_gets_a_client_span(otlp: OtlpReceiver) -> None:
    def peer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if b"CancelTask" in request.content else 200, json={})

    _, traces = app_and_traces(otlp)
    async with httpx.AsyncClient(transport=httpx.MockTransport(peer)) as http:
        traces.instrument(http)
        sent = child_traceparent(PARENT, "e1/ask/1")
        await http.post(
            "https://b:8443/a2a",
            json={"jsonrpc": "2.0", "method": "SendMessage"},
            headers={"traceparent": sent},
        )
        await http.post(
            "https://b:8443/a2a",
            json={"jsonrpc": "2.0", "method": "CancelTask"},
            headers={"traceparent": sent},
        )
        await http.get("https://b:8443/.well-known/agent-card.json")  # no traceparent: no span
    await traces.close()
    spans = otlp.wait_for(lambda s: len(s) == 2, "two client spans")
    send, cancel = spans
    assert (send.name, send.kind, send.trace_id) == ("A2A SendMessage", "CLIENT", TRACE)
    assert send.parent_id == f"{call_span_id(PARENT, 'e1/ask/1'):016x}"
    assert send.attributes["server.address"] == "b" and send.attributes["server.port"] == 8443
    assert (cancel.name, cancel.status, cancel.attributes["http.response.status_code"]) == (
        "A2A CancelTask",
        "ERROR",
        503,
    )


# -- spans from what ended ----------------------------------------------------------


SPECS: dict[str, NodeSpec] = {
    "write": ModelNode(id="write", prompt="x"),
    "ask": DelegateNode(id="ask", peer="b"),
    "step": PythonNode(id="step", function="m:f"),
}


def factory() -> SpanFactory:
    made: SpanFactory = span_factory(SPECS)
    return made


def built(end: VisitEnd) -> list[ReceivedSpan]:
    """The spans of ``end`` as a collector reads them (they are built written)."""
    from agent_node.telemetry.traces_wire import encode

    return decode(encode(factory().visit(end)))


def test_a_model_visit_s_call_carries_the_genai_conventions_and_its_fallbacks() -> None:
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "write", 1, 1)]
    )
    usage = {
        "model": "openai/gpt-4o",
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "calls": 2,
        "cost": 0.01,
    }
    output = {
        "model": "openai/gpt-4o",
        "fell_back": [{"model": "ollama_chat/qwen", "error": "down"}],
    }
    done = log(
        "node_completed", 12.0, "write", 1, next=None, duration=1.5, usage=usage, output=output
    )
    [plain], _ = ledger.committed(record(), [done])
    # Ran once: the ledger says so; a model's visit is more than its own span.
    assert isinstance(plain, tuple) and factory().plain(plain) is None
    visit, chat = built(visit_end(plain))
    assert (visit.name, chat.name, chat.kind) == ("model write", "chat qwen", "CLIENT")
    assert chat.parent_id == visit.span_id and chat.trace_id == visit.trace_id == TRACE
    assert visit.parent_id == f"{execution_span_id('e1'):016x}"
    assert visit.span_id == f"{visit_span_id('e1/write/1'):016x}"
    assert visit.attributes == {"agent_node.node.id": "write", "agent_node.node.type": "model"}
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "qwen",  # asked first
        "gen_ai.response.model": "gpt-4o",  # answered
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "agent_node.model": "openai/gpt-4o",
        "agent_node.model.calls": 2,
        "agent_node.model.cost": 0.01,
        "agent_node.model.fell_back": ["ollama_chat/qwen"],
    }
    # The last attempt's run, inside the visit.
    assert (chat.start, chat.end) == (10.5, 12.0)


def test_a_step_that_ran_once_is_one_span_of_its_node_s_fixed_parts() -> None:
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "step", 1, 1)]
    )
    [plain], _ = ledger.committed(record(), [log("node_completed", 10.4, "step", 1, next=None)])
    assert isinstance(plain, tuple)
    from agent_node.telemetry.traces_wire import Encoded, encode

    # Written from its parts made once, it is what the general way writes.
    written = factory().plain(plain)
    assert written is not None and [written] == [s.data for s in factory().visit(visit_end(plain))]
    [span] = decode(encode([Encoded(written, factory().resource, factory().scope)]))
    assert (span.name, span.kind, span.status, span.start, span.end) == (
        "python step",
        "INTERNAL",
        "UNSET",
        10.1,
        10.4,
    )
    assert (span.trace_id, span.parent_id) == (TRACE, f"{execution_span_id('e1'):016x}")
    assert span.span_id == f"{visit_span_id('e1/step/1'):016x}"
    assert span.attributes == {"agent_node.node.id": "step", "agent_node.node.type": "python"}
    # Its second visit says so.
    ledger.committed(record(), [log("node_started", 11.0, "step", 2, 1)])
    [again], _ = ledger.committed(record(), [log("node_completed", 11.5, "step", 2, next=None)])
    assert isinstance(again, tuple) and factory().plain(again) is None  # not its first
    [span] = built(visit_end(again))
    assert span.attributes["agent_node.visit"] == 2
    assert span.span_id == f"{visit_span_id('e1/step/2'):016x}"


def test_a_failed_visit_is_an_error_with_each_attempt_an_exception_event() -> None:
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "ask", 1, 1)]
    )
    retry = dict(error="peer down", type="PeerError", duration=0.1)
    ledger.committed(record(), [log("node_failed", 10.2, "ask", 1, 1, retry_at=11.0, **retry)])
    ledger.committed(record(), [log("node_started", 11.0, "ask", 1, 2)])
    final = log("node_failed", 11.5, "ask", 1, 2, retry_at=None, **retry)
    [end, _], _ = ledger.committed(
        record(status="failed"), [final, log("execution_failed", 11.5, error="x")]
    )
    assert isinstance(end, VisitEnd)
    visit, call = built(end)
    assert (visit.status, visit.status_message) == ("ERROR", "peer down")
    assert visit.attributes["agent_node.attempts"] == 2
    assert visit.attributes["error.type"] == "PeerError"
    assert [(e[0], e[1], e[2]["agent_node.attempt"]) for e in visit.events] == [
        ("exception", 10.2, 1),
        ("exception", 11.5, 2),
    ]
    assert visit.events[0][2]["agent_node.retry_at"] == 11.0
    # The delegation's span has the id the peer was sent, even though it never answered.
    assert (call.name, call.kind, call.status) == ("invoke_agent b", "CLIENT", "ERROR")
    assert call.span_id == f"{call_span_id(PARENT, 'e1/ask/1'):016x}"
    assert call.parent_id == visit.span_id
    assert call.attributes["agent_node.peer"] == "b"
    assert visit.start == 10.1


def test_an_execution_s_span_is_its_caller_s_child_across_processes() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from agent_node.telemetry.traces_wire import encode

    ledger, log = Ledger(), Log()
    ledger.committed(record(), [log("execution_started", 10.0)])
    [end], _ = ledger.committed(
        record(status="failed"), [log("execution_failed", 12.5, error="it broke")]
    )
    assert isinstance(end, ExecutionEnd)
    body = encode([factory().encoded(factory().execution(end))])
    [span] = decode(body)
    assert (span.name, span.kind, span.start, span.end) == (
        "invoke_agent n",
        "INTERNAL",
        10.0,
        12.5,
    )
    assert (span.trace_id, span.parent_id) == (TRACE, CALLER)
    assert span.span_id == f"{execution_span_id('e1'):016x}"
    assert (span.status, span.status_message) == ("ERROR", "it broke")
    assert span.attributes["gen_ai.conversation.id"] == "ctx"
    assert span.attributes["agent_node.execution.status"] == "failed"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    assert request.resource_spans[0].scope_spans[0].spans[0].flags == 0x300  # a remote parent
    # A trace the node made up: the execution is its root.
    root = ExecutionEnd(record({"traceparent": PARENT, "trace_root": True}), *_origin_at(end))
    [span] = decode(encode([factory().encoded(factory().execution(root))]))
    assert span.parent_id is None and span.trace_id == TRACE and span.status == "UNSET"


def _origin_at(end: ExecutionEnd) -> tuple[Any, float, str, str | None]:
    origin = origin_of(json.dumps({"traceparent": PARENT, "trace_root": True}))
    return origin, end.at, "completed", None


# -- the OTLP/HTTP exporter ----------------------------------------------------------


def test_what_the_exporter_writes_decodes_as_the_protobuf_says() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
    from opentelemetry.trace.status import Status, StatusCode

    from agent_node.telemetry.traces_wire import encode

    resource = Resource.create({"service.name": "n", "service.instance.id": "i"})
    scope = InstrumentationScope("agent_node", "0.1")
    flags = TraceFlags(TraceFlags.SAMPLED)
    state = TraceState([("k", "v")])
    attributes = {
        "s": "é ünïcode",
        "b": True,
        "i": 7,
        "neg": -3,
        "f": 1.5,
        "many": ["a", "b"],
        "ints": [1, 2],
        "big": 2**40,
    }
    span = ReadableSpan(
        "chat gpt-4o",
        SpanContext(int(TRACE, 16), 0xAB, False, flags, state),
        SpanContext(int(TRACE, 16), int(CALLER, 16), True, flags),
        resource,
        attributes,
        (Event("exception", {"exception.type": "E"}, 5),),
        (Link(SpanContext(int(TRACE, 16), 0xCD, False, flags), {"why": "x"}),),
        SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "it broke"),
        start_time=1_700_000_000_000_000_001,
        end_time=1_700_000_000_000_000_009,
        instrumentation_scope=scope,
    )
    root = ReadableSpan(
        "invoke_agent n",
        SpanContext(1, 2, False, flags),
        None,
        resource,
        {},
        start_time=1,
        end_time=2,
        instrumentation_scope=scope,
    )
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode([span, root]))
    [group] = request.resource_spans
    assert {kv.key: kv.value.string_value for kv in group.resource.attributes}[
        "service.name"
    ] == "n"
    [scoped] = group.scope_spans
    assert (scoped.scope.name, scoped.scope.version) == ("agent_node", "0.1")
    first, second = scoped.spans
    assert first.trace_id.hex() == TRACE and first.span_id.hex() == f"{0xAB:016x}"
    assert first.parent_span_id.hex() == CALLER and first.trace_state == "k=v"
    assert first.flags == 0x300  # the parent is remote, and that is known
    assert (first.name, first.kind) == ("chat gpt-4o", 3)  # SPAN_KIND_CLIENT
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_009,
    )
    decoded = {kv.key: kv.value for kv in first.attributes}
    assert decoded["s"].string_value == "é ünïcode" and decoded["b"].bool_value is True
    assert decoded["i"].int_value == 7 and decoded["neg"].int_value == -3
    assert decoded["f"].double_value == 1.5 and decoded["big"].int_value == 2**40
    assert [v.string_value for v in decoded["many"].array_value.values] == ["a", "b"]
    assert [v.int_value for v in decoded["ints"].array_value.values] == [1, 2]
    [event] = first.events
    assert (event.name, event.time_unix_nano, event.attributes[0].key) == (
        "exception",
        5,
        "exception.type",
    )
    [link] = first.links
    assert link.span_id.hex() == f"{0xCD:016x}" and link.attributes[0].value.string_value == "x"
    assert (first.status.code, first.status.message) == (2, "it broke")
    assert second.parent_span_id == b"" and second.flags == 0x100 and second.status.code == 0


def test_the_exporter_retries_a_busy_collector_and_sends_the_configured_headers(
    otlp: OtlpReceiver,
) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    from agent_node.telemetry.traces_otlp import OtlpHttpExporter

    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-team=blue,authorization=Bearer%20abc",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    settings = TracesSettings(endpoint=otlp.url, headers={"X-Team": "red"})
    exporter = OtlpHttpExporter(settings, env)
    ledger, log = Ledger(), Log()
    ledger.committed(
        record(), [log("execution_started", 10.0), log("node_started", 10.1, "ask", 1, 1)]
    )
    [plain], _ = ledger.committed(record(), [log("node_completed", 10.5, "ask", 1, next=None)])
    assert isinstance(plain, tuple)
    spans = factory().visit(visit_end(plain))
    otlp.refuse = 1
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert otlp.requests == 1 and len(otlp.headers) == 2  # one 503, then taken
    sent = otlp.headers[-1]
    assert sent["x-team"] == "red" and sent["authorization"] == "Bearer abc"
    assert sent["content-encoding"] == "gzip" and sent["content-type"] == "application/x-protobuf"
    assert [s.name for s in otlp.spans()] == ["delegate ask", "invoke_agent b"]
    # A collector that refuses for good costs a warning, not the node.
    otlp.refuse = 100
    exporter.timeout = 0.6
    assert exporter.export(spans) == SpanExportResult.FAILURE
    exporter.shutdown()
    assert exporter.export(spans) == SpanExportResult.FAILURE


def test_bundles_of_spans_go_out_in_requests_of_bounded_size(otlp: OtlpReceiver) -> None:
    """Spans from commits reach the exporter in bundles; a batch of many
    bundles is split so that no request outgrows what collectors take."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    from agent_node.telemetry.traces_otlp import REQUEST_BYTES, OtlpHttpExporter
    from agent_node.telemetry.traces_wire import Encoded

    spans = factory()
    ledger, log = Ledger(), Log()
    ledger.committed(record(), [log("execution_started", 10.0)])
    written: list[bytes] = []
    for _ in range(16_000):
        ledger.committed(record(), [log("node_started", 11.0, "step", 1, 1)])
        [plain], _ = ledger.committed(record(), [log("node_completed", 11.5, "step", 1)])
        data = spans.plain(plain)
        assert data is not None
        written.append(data)
    bundles = [
        Encoded(b"".join(written[i : i + 64]), spans.resource, spans.scope)
        for i in range(0, len(written), 64)
    ]
    assert sum(len(b.data) for b in bundles) > 2 * REQUEST_BYTES
    exporter = OtlpHttpExporter(TracesSettings(endpoint=otlp.url), {})
    assert exporter.export(bundles) == SpanExportResult.SUCCESS
    assert otlp.requests >= 3 and max(otlp.sizes) <= REQUEST_BYTES + 64 * 1024
    assert len(otlp.spans()) == 16_000
    exporter.shutdown()


def test_the_endpoint_follows_the_standard_variables() -> None:
    from agent_node.telemetry.traces_otlp import endpoint_of

    none = TracesSettings()
    assert endpoint_of(none, {}) == "http://localhost:4318/v1/traces"
    assert endpoint_of(none, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    both = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
    }
    assert endpoint_of(none, both) == "http://t:4318/custom"
    assert (
        endpoint_of(TracesSettings(endpoint="https://s/v1/traces"), both) == "https://s/v1/traces"
    )


class Three(BaseModel):
    n: int = 0


async def three_steps_traced(otlp: OtlpReceiver) -> tuple[Any, Runtime, Any]:
    """A workflow of three steps on a started ``memory://`` runtime whose
    traces go to ``otlp`` (the caller closes both)."""

    async def step(state: Three) -> None:
        return None

    wf = Workflow("three", version="1")
    wf.state(Three)
    for name in ("a", "b", "c"):
        wf.step(step, name=name)
    compiled = wf.compile()
    runtime = Runtime("memory://")
    runtime.workflows.add(compiled)
    await runtime.start()
    settings = TelemetrySettings.model_validate({"traces": {"endpoint": otlp.url}})
    traces = start_traces(settings, node="unit", runtime=runtime)
    assert traces is not None
    return compiled, runtime, traces


def test_the_processor_s_sizes_count_bundles_of_spans() -> None:
    assert bundled_sizes({}, 16) == (128, 32)  # the SDK's 2048 and 512 spans
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "40"}
    assert bundled_sizes(env, 16) == (7, 3)  # rounded up
    assert bundled_sizes({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "9999"}, 16) == (128, 128)
    assert bundled_sizes({"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, 1) == (2048, 512)
    assert bundled_sizes({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, 1) == (2048, 512)


async def test_an_export_carries_the_spans_the_variables_say_not_as_many_bundles(
    otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # exports by size only
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")  # spans: two bundles
    compiled, runtime, traces = await three_steps_traced(otlp)
    try:
        for _ in range(40):  # 160 spans: an execution's and its three visits'
            execution_id, _ = await runtime.engine.submit(
                compiled, Three(), metadata={"traceparent": PARENT}
            )
            assert (await runtime.engine.wait(execution_id)).status == "completed"
    finally:
        await traces.close()
        await runtime.close()
    assert len(otlp.spans()) == 160
    # A bundle closes at 16 spans or just over (a commit adds up to two).
    assert len(otlp.batches) >= 5 and max(otlp.batches) <= 34, otlp.batches


async def test_a_running_node_s_spans_leave_without_waiting_for_its_close(
    otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans from commits are handed over in bundles: a bundle that does not
    fill still goes within a moment, and each span of a run arrives once."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    compiled, runtime, traces = await three_steps_traced(otlp)
    try:
        execution_id, _ = await runtime.engine.submit(
            compiled, Three(), metadata={"traceparent": PARENT}
        )
        assert (await runtime.engine.wait(execution_id)).status == "completed"
        spans = await asyncio.to_thread(
            otlp.wait_for, lambda s: len(s) == 4, "the run's spans, the node still open", 10
        )
        names = sorted(s.name for s in spans)
        assert names == ["invoke_agent unit", "python a", "python b", "python c"]
        [run] = [s for s in spans if s.name == "invoke_agent unit"]
        assert {s.parent_id for s in spans if s is not run} == {run.span_id}
        assert len({s.span_id for s in spans}) == 4
    finally:
        await traces.close()
        await runtime.close()
    assert len(otlp.spans()) == 4


def test_an_execution_span_s_text_attributes_of_any_length_decode() -> None:
    from agent_node.telemetry.traces_wire import encode

    for caller in ("", "c", "x" * 111, "y" * 112, "é" * 200, "z" * 70_000):
        record_ = record({"traceparent": PARENT, "caller": caller})
        record_.context_id = "ctx-" + caller[:5]
        origin = origin_of(record_.metadata)
        assert origin is not None
        end = ExecutionEnd(record_, origin, 12.0, "completed", None)
        [span] = decode(encode([factory().encoded(factory().execution(end))]))
        assert span.attributes["agent_node.caller"] == caller
        assert span.attributes["gen_ai.conversation.id"] == "ctx-" + caller[:5]
        assert span.attributes["agent_node.execution.id"] == "e1"
        assert span.attributes["agent_node.execution.status"] == "completed"


async def test_request_spans_without_a_parent_follow_the_configured_sampler(
    otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}}
    for sampler, roots in (("always_off", 0), ("parentbased_always_on", 2), ("always_on", 2)):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
        before = len(otlp.spans())
        app, traces = app_and_traces(otlp)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://n") as http:
            await http.post("/a2a", json=body)  # a root: the sampler decides
            await http.post("/a2a", json=body, headers={"traceparent": PARENT})  # sampled
            await http.post("/a2a", json=body)
        await traces.close()
        want = before + roots + 1
        spans = otlp.wait_for(lambda s, want=want: len(s) == want, f"{sampler}'s spans")[before:]
        assert sorted(s.parent_id or "" for s in spans) == [*["", ""][:roots], CALLER]
