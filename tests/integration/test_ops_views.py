"""The operator API's views for people and the web UI (issue 17), against a
real uvicorn app over mutual TLS: who the node is, pages of executions with
filters and cursors, one execution in full (graph, state changes, errors,
delegations), the inbox, the SSE streams, retry — operators only, and a
clear 400 for every bad input."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from support.certs import make_certs
from support.delegation_rig import delegating, rig
from support.fake_ollama import FakeOllama, text
from support.history import fill
from support.served import served
from support.tls import caller_context

from agent_node import Runtime, Workflow
from agent_node.a2a.server.ops import NodeAbout, ops_routes
from agent_node.a2a.server.ops_views import execution_view
from agent_node.config import ModelSettings, PolicySettings
from agent_node.errors import Throttled
from agent_node.integrations.llm import LlmClient
from agent_node.nodes.model import ModelExecutor
from agent_node.security.authz import Policy
from agent_node.security.tls import server_context
from agent_node.workflow.compiled import CompiledWorkflow

D = "spiffe://example.org/agent"
MODEL = "ollama_chat/llama3.2:1b"


class Note(BaseModel):
    text: str = ""
    upper: str = ""
    size: int = 0
    reply: str = ""


def steps() -> CompiledWorkflow:
    wf = Workflow("steps", version="1")
    wf.state(Note)

    @wf.step
    async def shout(s: Note) -> dict[str, Any]:
        return {"upper": s.text.upper()}

    @wf.step
    async def measure(s: Note) -> dict[str, Any]:
        return {"size": len(s.text)}

    wf.end("done")
    return wf.compile()


def asking() -> CompiledWorkflow:
    wf = Workflow("asking", version="1")
    wf.state(Note)
    wf.wait("ask", input="What about {{ state.text }}?", output="reply")
    wf.end("done")
    return wf.compile()


def holding() -> CompiledWorkflow:
    wf = Workflow("holding", version="1")
    wf.state(Note)
    wf.wait("hold", event="approved", output="reply", timeout=3600)
    wf.end("done")
    return wf.compile()


def failing() -> CompiledWorkflow:
    wf = Workflow("failing", version="1")
    wf.state(Note)

    @wf.step(retry=1)
    async def explode(s: Note) -> dict[str, Any]:
        raise ValueError(f"cannot handle {s.text!r}")

    wf.end("done")
    return wf.compile()


def talking() -> CompiledWorkflow:
    wf = Workflow("talking", version="1")
    wf.state(Note)
    wf.wait("go", event="go")
    wf.model("write", prompt="Say something about {{ state.text }}", output="reply")
    wf.end("done")
    return wf.compile()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ops") / "certs", "node", "ops", "alice")


@asynccontextmanager
async def ops_node(runtime: Runtime, certs: Path, about: NodeAbout | None = None) -> Any:
    policy = Policy.of(PolicySettings(operators=[f"{D}/ops"]))
    app = Starlette(routes=ops_routes(runtime, policy, about))
    tls = server_context(
        certs / "node.pem", certs / "node-key.pem", [certs / "ca.pem"], require_client_cert=False
    )
    async with served(app, tls) as url:
        yield url


@pytest.fixture
async def runtime(durable_url: str) -> AsyncIterator[Runtime]:
    async with Runtime(durable_url, scope="all", poll_interval=0.05) as made:
        yield made


@pytest.fixture
async def node(runtime: Runtime, certs: Path) -> AsyncIterator[str]:
    about = NodeAbout(
        "tester",
        "https://127.0.0.1:1",
        {
            "name": "Tester",
            "skills": [{"id": "shout"}],
            "signatures": [{"header": {"x5c": ["MII"]}}],
        },
        {"shout": "steps"},
    )
    async with ops_node(runtime, certs, about) as url:
        yield url


def client(certs: Path, name: str | None = "ops") -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, name), timeout=15)


async def get(url: str, certs: Path, **params: Any) -> Any:
    async with client(certs) as http:
        answer = await http.get(url, params=params or None)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- who may ------------------------------------------------------------------------


PATHS = [
    ("GET", "/ops/node"),
    ("GET", "/ops/inbox"),
    ("GET", "/ops/stream"),
    ("GET", "/ops/executions?status=failed"),
    ("GET", "/ops/executions/x1"),
    ("GET", "/ops/executions/x1/live"),
    ("POST", "/ops/executions/x1/retry"),
]


@pytest.mark.parametrize("who", ["alice", None])
async def test_only_operators_may_look(node: str, certs: Path, who: str | None) -> None:
    async with client(certs, who) as http:
        for method, path in PATHS:
            answer = await http.request(method, node + path)
            assert answer.status_code == 403, (path, answer.text)
            error = answer.json()["error"]
            assert error["status"] == "PERMISSION_DENIED"
            assert "is not an operator" in error["message"]


# -- bad input ------------------------------------------------------------------------


BAD = [
    ("status=bogus", "status must be among"),
    ("status=completed,nope", "not 'nope'"),
    ("limit=0", "limit must be an integer from 1 to 500"),
    ("limit=²", "limit must be an integer"),
    ("limit=99999999999999999999999", "limit must be an integer"),
    ("offset=-1", "offset must be an integer"),
    ("since=-5", "since must be a time in epoch seconds"),
    ("since=nan", "since must be a time"),
    ("until=tomorrow", "until must be a time"),
    ("since=20&until=10", "until must not be before since"),
    ("cursor=%21%21", "cursor is not one this API gave out"),
    ("cursor=WzEsMiwzXQ", "cursor is not one this API gave out"),
    ("cursor=WyJhIiwiYiJd", "cursor is not one this API gave out"),
    ("cursor=WzEsImEiXQ&offset=3", "give cursor or offset, not both"),
    ("q=abc&count=1", "count=1 counts what the store filters"),
    ("until=5&count=1", "count=1 counts what the store filters"),
    ("count=yes", "count must be 1 or 0"),
    ("skill=nope", "no skill 'nope' here (skills: shout)"),
    ("skill=shout&workflow=other", "skill 'shout' runs workflow 'steps', not 'other'"),
    ("q=" + "x" * 600, "q must be printable text of at most 500 characters"),
    ("caller=%07", "caller must be printable text"),
]


@pytest.mark.parametrize(("query", "message"), BAD)
async def test_bad_list_queries_are_refused_clearly(
    node: str, certs: Path, query: str, message: str
) -> None:
    async with client(certs) as http:
        answer = await http.get(f"{node}/ops/executions?{query}")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]


async def test_bad_actions_and_unknown_executions(runtime: Runtime, node: str, certs: Path) -> None:
    parked = await runtime.run(holding(), {"text": "a"}, execution_id="h1")
    assert parked.status == "waiting"
    async with client(certs) as http:
        cases = [
            (await http.get(f"{node}/ops/executions/nope"), 404, "no execution 'nope'"),
            (await http.get(f"{node}/ops/executions/nope/live"), 404, "no execution 'nope'"),
            (await http.get(f"{node}/ops/inbox?cursor=zz"), 400, "cursor is not one"),
            (await http.get(f"{node}/ops/inbox?cursor=WzAsTmFOLCJhIl0"), 400, "cursor is not"),
            (await http.get(f"{node}/ops/inbox?cursor=WzNd"), 400, "cursor is not one"),
            (await http.get(f"{node}/ops/inbox?limit=1000"), 400, "limit must be"),
            (await http.post(f"{node}/ops/executions/h1/signal", json={}), 400, '"event"'),
            (
                await http.post(f"{node}/ops/executions/h1/signal", json={"event": "other"}),
                409,
                "other",
            ),
            (await http.post(f"{node}/ops/executions/h1/retry"), 409, "only failed or canceled"),
            (await http.post(f"{node}/ops/executions/h1/retry", content=b"[1"), 400, "not JSON"),
        ]
    for answer, status, message in cases:
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]["message"]


# -- the node ---------------------------------------------------------------------------


async def test_the_node_says_who_it_is_and_how_busy(
    runtime: Runtime, node: str, certs: Path
) -> None:
    await runtime.run(steps(), {"text": "hi"})
    await runtime.run(asking(), {"text": "lunch"})
    await runtime.run(holding(), {"text": "x"})
    about = await get(f"{node}/ops/node", certs)
    assert about["name"] == "tester" and about["url"] == "https://127.0.0.1:1"
    assert about["version"]
    assert about["card"] == {"name": "Tester", "skills": [{"id": "shout"}], "signed": True}
    assert about["skills"] == {"shout": "steps"}
    assert about["counts"] == {"pending": 0, "running": 0, "waiting": 2}
    assert about["asking"] == {"input": 1, "auth": 0}
    assert about["load"] == {"running": 0, "waiting": 2}
    assert about["here"] == {"visits": 0, "slots": runtime.engine.concurrency}
    assert about["engine"] == "running"
    every = await get(f"{node}/ops/node", certs, counts="all")
    assert every["counts"]["completed"] == 1 and every["counts"]["failed"] == 0
    async with client(certs) as http:
        wrong = await http.get(f"{node}/ops/node?counts=some")
    assert wrong.status_code == 400 and "counts must be 'all'" in wrong.text


async def test_the_node_says_what_runs_in_this_process(
    runtime: Runtime, node: str, certs: Path
) -> None:
    """Replicas of one store show the store's counts alike; ``here`` is each
    one's own share: the steps running in it."""
    going = asyncio.Event()
    wf = Workflow("slow", version="1")
    wf.state(Note)

    @wf.step
    async def think(s: Note) -> dict[str, Any]:
        await going.wait()
        return {"reply": "done"}

    execution_id, _ = await runtime.engine.submit(wf.compile(), Note())
    for _ in range(200):
        if runtime.engine.running_visits:
            break
        await asyncio.sleep(0.01)
    about = await get(f"{node}/ops/node", certs)
    assert about["here"]["visits"] == 1, about
    going.set()
    assert (await runtime.engine.wait(execution_id, until="terminal")).status == "completed"


# -- lists ------------------------------------------------------------------------------


async def test_pages_follow_cursors_and_never_show_a_row_twice(
    runtime: Runtime, node: str, certs: Path
) -> None:
    ids = await fill(runtime.store, 130, workflow="history", start=1_000.0)
    seen: list[str] = []
    first = await get(f"{node}/ops/executions", certs, limit=50, count=1)
    assert first["count"] == 130
    assert [r["id"] for r in first["executions"]] == ids[::-1][:50]
    seen += [r["id"] for r in first["executions"]]
    # Newer executions arrive between two pages: the next page goes on where it was.
    await fill(runtime.store, 7, workflow="history", start=5_000.0)
    page = first
    while page["next"]:
        page = await get(f"{node}/ops/executions", certs, limit=50, cursor=page["next"])
        seen += [r["id"] for r in page["executions"]]
    assert seen == ids[::-1]
    # Each row's own cursor continues right after it.
    middle = first["executions"][9]["cursor"]
    after = await get(f"{node}/ops/executions", certs, limit=3, cursor=middle)
    assert [r["id"] for r in after["executions"]] == ids[::-1][10:13]


async def test_filters(runtime: Runtime, node: str, certs: Path) -> None:
    ids = await fill(runtime.store, 40, workflow="history", start=1_000.0, caller=f"{D}/alice")
    done = await runtime.run(steps(), {"text": "hi"})

    def listed(page: dict[str, Any]) -> list[str]:
        return [r["id"] for r in page["executions"]]

    failed = await get(f"{node}/ops/executions", certs, status="failed", limit=500)
    assert {r["status"] for r in failed["executions"]} == {"failed"}
    assert len(failed["executions"]) == 8
    two = await get(f"{node}/ops/executions?status=failed&status=canceled&limit=500", certs)
    comma = await get(f"{node}/ops/executions?status=failed,canceled&limit=500", certs)
    assert listed(two) == listed(comma) and len(listed(two)) == 16
    assert listed(await get(f"{node}/ops/executions", certs, skill="shout")) == [done.execution_id]
    assert listed(await get(f"{node}/ops/executions", certs, workflow="steps")) == [
        done.execution_id
    ]
    by_caller = await get(f"{node}/ops/executions", certs, caller=f"{D}/alice", limit=500)
    assert sorted(listed(by_caller)) == sorted(ids)
    # since: changed at or after; until: created at or before.
    window = await get(f"{node}/ops/executions", certs, since=1_010.0, until=1_019.0)
    assert listed(window) == ids[10:20][::-1] and window["next"] is None
    paged = await get(f"{node}/ops/executions", certs, until=1_019.0, limit=15)
    assert listed(paged) == ids[5:20][::-1]
    rest = await get(f"{node}/ops/executions", certs, until=1_019.0, cursor=paged["next"])
    assert listed(rest) == ids[:5][::-1]
    # q: an id, or the start of one (on the store's index), or its end.
    exact = await get(f"{node}/ops/executions", certs, q=ids[3])
    assert listed(exact) == [ids[3]] and exact["exact"] is True
    newest_first = [done.execution_id, *ids[::-1]]
    start = Counter(i[0] for i in newest_first).most_common(1)[0][0]  # of 3 ids or more
    starting = [i for i in newest_first if i.startswith(start)]
    prefix = await get(f"{node}/ops/executions", certs, q=start, limit=2)
    assert listed(prefix) == starting[:2] and "scanned" not in prefix
    rest = await get(f"{node}/ops/executions", certs, q=start, cursor=prefix["next"], limit=500)
    assert listed(prefix) + listed(rest) == starting and rest["next"] is None
    end = await get(f"{node}/ops/executions", certs, q=ids[5][-8:])
    assert listed(end) == [ids[5]] and end["scanned"] == 41
    assert listed(await get(f"{node}/ops/executions", certs, q="no-such-id")) == []


# -- one execution -----------------------------------------------------------------------


async def test_an_execution_in_full(runtime: Runtime, node: str, certs: Path) -> None:
    done = await runtime.run(steps(), {"text": "hello"})
    view = await get(f"{node}/ops/executions/{done.execution_id}", certs)
    assert view["status"] == "completed" and view["workflow"] == "steps"
    graph = view["graph"]
    assert graph["start"] == "shout"
    assert [n["id"] for n in graph["nodes"]] == ["shout", "measure", "done"]
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {
        ("shout", "measure"),
        ("measure", "done"),
    }
    assert view["visited"] == ["done", "measure", "shout"]
    assert view["current"] == {"work": [], "waits": []}
    assert view["input"] == {"text": "hello", "upper": "", "size": 0, "reply": ""}
    assert [(s["node"], s["before"], s["after"]) for s in view["steps"]] == [
        ("shout", {"upper": ""}, {"upper": "HELLO"}),
        ("measure", {"size": 0}, {"size": 5}),
    ]
    assert [(t["node"], t["status"]) for t in view["timeline"]] == [
        ("shout", "completed"),
        ("measure", "completed"),
        ("done", "completed"),
    ]
    assert view["errors"] == [] and view["delegations"] == [] and view["question"] is None


async def test_errors_carry_their_traceback_and_a_retry_starts_again(
    runtime: Runtime, node: str, certs: Path
) -> None:
    failed = await runtime.run(failing(), {"text": "bad"})
    assert failed.status == "failed"
    view = await get(f"{node}/ops/executions/{failed.execution_id}", certs)
    node_error = next(e for e in view["errors"] if e["node"] == "explode")
    assert node_error["type"] == "ValueError"
    assert "cannot handle 'bad'" in node_error["error"]
    assert "Traceback (most recent call last)" in node_error["traceback"]
    assert "raise ValueError" in node_error["traceback"]
    assert view["current"]["waits"] == []

    async with client(certs) as http:
        answer = await http.post(f"{node}/ops/executions/{failed.execution_id}/retry")
    assert answer.status_code == 200, answer.text
    new_id = answer.json()["retried_as"]
    assert new_id != failed.execution_id
    record = await runtime.engine.wait(new_id)
    assert record.status == "failed"
    assert json.loads(record.metadata or "{}")["retry_of"] == failed.execution_id
    assert json.loads(record.metadata or "{}")["retried_by"] == f"{D}/ops"
    again = await get(f"{node}/ops/executions/{new_id}", certs)
    assert again["input"] == view["input"]


# -- the inbox ---------------------------------------------------------------------------


async def test_the_inbox_holds_questions_and_event_waits(
    runtime: Runtime, node: str, certs: Path
) -> None:
    asked = [await runtime.run(asking(), {"text": f"topic {i}"}) for i in range(3)]
    held = await runtime.run(holding(), {"text": "x"})
    await runtime.run(steps(), {"text": "not parked"})
    page = await get(f"{node}/ops/inbox", certs, limit=2)
    items = list(page["items"])
    while page["next"]:
        page = await get(f"{node}/ops/inbox", certs, limit=2, cursor=page["next"])
        items += page["items"]
    questions = [i for i in items if i["kind"] == "input"]
    assert {q["execution"]["id"] for q in questions} == {r.execution_id for r in asked}
    newest = questions[0]
    assert newest["question"]["text"] == "What about topic 2?"
    assert newest["node"] == "ask" and newest["event"] == "input"
    (event,) = [i for i in items if i["kind"] == "event"]
    assert event["execution"]["id"] == held.execution_id
    assert event["event"] == "approved" and event["deadline"] is not None
    assert len(items) == 4


# -- streams ---------------------------------------------------------------------------


async def read_events(response: httpx.Response, until: Any) -> list[tuple[str, Any]]:
    """SSE events of ``response`` until ``until(events)`` holds."""
    events: list[tuple[str, Any]] = []
    name = "message"
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if until(events):
                return events
    return events


async def test_the_stream_tells_what_changes(runtime: Runtime, node: str, certs: Path) -> None:
    async with client(certs) as http:
        async with http.stream("GET", f"{node}/ops/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            started = asyncio.create_task(runtime.run(steps(), {"text": "go"}))
            seen: dict[str, str] = {}
            name = ""
            async for line in lines:
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "changes":
                    for row in json.loads(line[6:])["executions"]:
                        seen[row["id"]] = row["status"]
                    if "completed" in seen.values():
                        break
            done = await started
            assert seen[done.execution_id] == "completed"
        # The client went; the node serves on.
        assert (await http.get(f"{node}/ops/node")).status_code == 200


@pytest.fixture
async def model_runtime(tmp_path: Path, ollama: FakeOllama) -> AsyncIterator[Runtime]:
    settings = ModelSettings(default=MODEL, api_base=ollama.url, timeout=10)
    async with LlmClient(settings) as llm:
        executors = {"model": ModelExecutor(llm)}
        url = f"sqlite:///{tmp_path}/talk.db"
        async with Runtime(url, scope="all", poll_interval=0.05, executors=executors) as made:
            yield made


async def test_live_text_streams_while_a_model_writes(
    model_runtime: Runtime, certs: Path, ollama: FakeOllama
) -> None:
    answer = "Durable agents keep their place when a process dies, so nothing runs twice."
    ollama.script(text(answer))
    ollama.stream_chunks, ollama.chunk_delay = 8, 0.05
    runtime = model_runtime
    parked = await runtime.run(talking(), {"text": "durability"})
    async with ops_node(runtime, certs) as node, client(certs) as http:
        url = f"{node}/ops/executions/{parked.execution_id}/live"
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            reading = asyncio.create_task(read_events(response, lambda seen: seen[-1][0] == "end"))
            await asyncio.sleep(0.2)
            await runtime.engine.control.signal(parked.execution_id, "go")
            runtime.engine.drive(parked.execution_id)
            events = await asyncio.wait_for(reading, 20)
        chunks = [data for name, data in events if name == "chunk"]
        assert len(chunks) >= 3
        assert chunks[0]["append"] is False and chunks[0]["node"] == "write"
        assert "".join(c["text"] for c in chunks) == answer
        assert events[-1] == ("end", {"status": "completed"})
        view = (await http.get(f"{node}/ops/executions/{parked.execution_id}")).json()
    usage = view["usage"]
    assert usage["by_node"]["write"]["calls"] == 1 and usage["total"]["tokens"] > 0
    timeline = {t["node"]: t for t in view["timeline"]}
    assert timeline["write"]["usage"]["calls"] == 1


async def test_streams_end_when_the_node_drains(runtime: Runtime, certs: Path) -> None:
    """A stream would hold a stopping node for its graceful timeout: once the
    node drains, each says ``bye`` and ends."""
    serving = True
    about = NodeAbout("tester", serving=lambda: serving)
    parked = await runtime.run(holding(), {"text": "x"})
    async with ops_node(runtime, certs, about) as node, client(certs) as http:
        url = f"{node}/ops/executions/{parked.execution_id}/live"
        async with (
            http.stream("GET", f"{node}/ops/stream") as changes,
            http.stream("GET", url) as live,
        ):
            readers = [
                asyncio.create_task(read_events(r, lambda seen: seen[-1][0] == "bye"))
                for r in (changes, live)
            ]
            await asyncio.sleep(0.3)
            assert not any(r.done() for r in readers)
            serving = False
            began = asyncio.get_running_loop().time()
            seen = await asyncio.wait_for(asyncio.gather(*readers), 5)
            assert asyncio.get_running_loop().time() - began < 2.5
    assert [events[-1][0] for events in seen] == ["bye", "bye"]


# -- which store, errors and notes, skills ---------------------------------------------


async def test_nodes_of_one_store_name_it_alike(
    runtime: Runtime, durable_url: str, certs: Path
) -> None:
    """Two nodes on one database (replicas, or two nodes sharing it) name one
    store on every view a viewer merges by; a store elsewhere is another."""
    held = await runtime.run(holding(), {"text": "x"})
    async with (
        Runtime(durable_url, scope="all", poll_interval=0.05) as replica,
        Runtime("memory://", scope="all") as apart,
        Runtime("memory://", scope="all") as apart_too,
        ops_node(runtime, certs, NodeAbout("shop")) as one,
        ops_node(replica, certs, NodeAbout("shop")) as two,
        ops_node(apart, certs, NodeAbout("shop")) as three,
        ops_node(apart_too, certs, NodeAbout("stock")) as four,
    ):
        stores = []
        for url in (one, two, three, four):
            node = await get(f"{url}/ops/node", certs)
            listed = await get(f"{url}/ops/executions", certs)
            parked = await get(f"{url}/ops/inbox", certs)
            assert node["store"] == listed["store"] == parked["store"]
            stores.append(node["store"])
        shared = await get(f"{two}/ops/executions", certs)
    assert stores[0] == stores[1]
    assert len(set(stores)) == 3  # two memory stores are two stores
    assert [row["id"] for row in shared["executions"]] == [held.execution_id]


async def test_errors_hold_failures_only_and_notes_the_rest(
    runtime: Runtime, node: str, certs: Path
) -> None:
    """A message received, a budget set and a service's "come back later"
    are notes; only a failure is an error."""
    calls = {"n": 0}
    wf = Workflow("patient", version="1")
    wf.state(Note)

    @wf.step
    async def call(s: Note) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Throttled("429 Too Many Requests", retry_after=0.05)
        return {"reply": "done"}

    wf.end("done")
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "be patient"}]}
    execution_id, _ = await runtime.engine.submit(
        wf.compile(), {"text": "x"}, notes=[("message_received", message)]
    )
    assert (await runtime.engine.wait(execution_id)).status == "completed"
    budgeted = await runtime.run(steps(), {"text": "y"}, budget={"calls": 3})
    view = await get(f"{node}/ops/executions/{execution_id}", certs)
    other = await get(f"{node}/ops/executions/{budgeted.execution_id}", certs)
    assert view["errors"] == [] and other["errors"] == []
    notes = {n["kind"]: n for n in view["notes"]}
    assert notes["message"]["text"] == "be patient"
    assert notes["throttled"]["node"] == "call"
    assert "429 Too Many Requests" in notes["throttled"]["text"]
    assert [n["kind"] for n in other["notes"]] == ["budget"]
    assert "calls 3" in other["notes"][0]["text"]
    failed = await runtime.run(failing(), {"text": "bad"})
    broken = await get(f"{node}/ops/executions/{failed.execution_id}", certs)
    assert broken["errors"] and all(e["error"] for e in broken["errors"])
    assert broken["notes"] == []


async def test_an_execution_tells_the_skill_it_was_started_for(
    runtime: Runtime, node: str, certs: Path
) -> None:
    """Named by its message, else the one skill of the node that runs its
    workflow; left out (not null) where nothing tells."""
    plain = await runtime.run(steps(), {"text": "a"})
    message = {"messageId": "m2", "role": "ROLE_USER", "parts": [], "metadata": {"skill": "shout"}}
    named, _ = await runtime.engine.submit(
        steps(), {"text": "b"}, notes=[("message_received", message)]
    )
    await runtime.engine.wait(named)
    unknown = await runtime.run(holding(), {"text": "c"})
    views = [
        await get(f"{node}/ops/executions/{execution_id}", certs)
        for execution_id in (plain.execution_id, named, unknown.execution_id)
    ]
    assert [view.get("skill") for view in views] == ["shout", "shout", None]
    assert "skill" not in views[2]


async def test_a_delegation_tells_its_skill_and_leaves_out_what_is_not_known(
    store_url: str,
) -> None:
    async with rig(store_url) as made:
        by_skill = await made.start(delegating("hello", "skill: ask"))
        by_peer = await made.start(delegating("hi"))
        for execution_id in (by_skill, by_peer):
            await made.finish(execution_id)
        runtime = made.runtime
        views = {}
        for execution_id in (by_skill, by_peer):
            record = await runtime.store.get(execution_id)
            assert record is not None
            views[execution_id] = await execution_view(runtime, record)
    (asked,) = views[by_skill]["delegations"]
    (named,) = views[by_peer]["delegations"]
    assert asked["skill"] == "ask" and asked["peer"] == "p" and asked["outcome"] == "completed"
    # A peer on plain HTTP proves no identity, and a delegation by peer name
    # alone asks for no skill: neither is shown as null.
    assert "identity" not in asked and "skill" not in named and "identity" not in named
