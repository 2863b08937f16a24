"""A model's text streamed through a chain of agents (issue 16): three real
node processes over mutual TLS, A → B → C, C's model node writing through
real litellm against the fake Ollama. A's caller, on one
``SendStreamingMessage``, sees C's text arrive piece by piece, relayed by B
and A as chunks of one artifact per hop, before the task completes; the
task's committed result is the answer, once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from e2e.procs import Spawn, wait_until
from e2e.test_delegation import V10, Net, client
from support.certs import make_certs
from support.fake_ollama import MODEL, FakeOllama, Reply, serving, text
from support.workflows import WRITER_YAML

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ANSWER = "Streams of tokens travel from C through B to A as they are written, hop by hop."


@pytest.fixture
def net(tmp_path: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, make_certs(tmp_path / "certs", "a", "b", "c", "w", "alice"), spawn)


@pytest.fixture
def ollama() -> AsyncIterator[FakeOllama]:
    with serving(default=text(ANSWER)) as fake:
        fake.stream_chunks, fake.chunk_delay = 16, 0.08
        yield fake


async def stream(net: Net, node: str, words: str) -> list[tuple[float, dict[str, Any]]]:
    """``SendStreamingMessage`` to ``node``: each event with when it came."""
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": words}]}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }
    seen: list[tuple[float, dict[str, Any]]] = []
    async with client(net.certs) as http:
        async with http.stream("POST", f"{net.url(node)}/a2a", json=body, headers=V10) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    seen.append((time.monotonic(), json.loads(line[5:])["result"]))
    return seen


async def test_c_s_tokens_reach_a_s_subscriber_through_b(net: Net, ollama: FakeOllama) -> None:
    writer = net.root / "writer.yaml"
    writer.write_text(WRITER_YAML)
    models = f"models: {{default: 'ollama_chat/{MODEL}', api_base: '{ollama.url}'}}\n"
    net.configure("c", {"write": writer}, [], extra=models)
    net.configure("b", {"relay": net.relay("b", "c", "write", as_text=True, keep="text")}, ["c"])
    net.configure("a", {"relay": net.relay("a", "b", "relay", as_text=True)}, ["b"])
    for name in ("c", "b", "a"):
        await net.start(name)

    seen = await stream(net, "a", "How do tokens travel?")

    task_id = seen[0][1]["task"]["id"]
    updates = [(at, e["artifactUpdate"]) for at, e in seen if "artifactUpdate" in e]
    relayed = [(at, u) for at, u in updates if "/" in u["artifact"]["artifactId"]]
    assert relayed, f"no chunk of C's text reached A's subscriber: {seen}"
    ids = {u["artifact"]["artifactId"] for _, u in relayed}
    assert len(ids) == 1, "\n".join(json.dumps(u) for _, u in relayed)
    (artifact_id,) = ids
    # One artifact per hop: A's visit / B's visit / C's model node's visit.
    a_part, b_part, c_part = artifact_id.split("/")
    assert a_part == f"{task_id}-ask-1"
    assert b_part.endswith("-ask-1") and c_part.endswith("-write-1")
    assert {u["artifact"]["name"] for _, u in relayed} == {"write"}
    flags = [(u.get("append", False), u.get("lastChunk", False)) for _, u in relayed]
    assert flags[0] == (False, False) and flags[-1][1] is True
    assert all(append for append, _ in flags[1:]), flags
    written = "".join(u["artifact"]["parts"][0]["text"] for _, u in relayed)
    assert written == ANSWER
    # Piece by piece, and before the task completed.
    assert len(relayed) >= 4, flags
    done_at = next(
        at
        for at, e in seen
        if e.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"
    )
    assert relayed[0][0] < done_at - 0.3
    # The task's committed answer, once.
    final = [u for _, u in updates if "/" not in u["artifact"]["artifactId"]]
    assert [p.get("data") for u in final for p in u["artifact"]["parts"]] == [{"verdict": ANSWER}]


@pytest.mark.postgres
async def test_a_node_killed_mid_stream_starts_its_text_over_for_another_replica_s_subscriber(
    net: Net, ollama: FakeOllama, pg_url: str
) -> None:
    """w1 and w2 are replicas of one node on PostgreSQL. The task runs on w2,
    its subscriber reads w1. w2 is SIGKILLed mid-answer and restarted: it
    takes its lease back at once and runs the model node again, and the
    subscriber on w1 sees the artifact start over (a chunk that does not
    append) and then the whole second answer."""
    ollama.stream_chunks, ollama.chunk_delay = 20, 0.15
    ollama.script(Reply(content="An answer that will be cut short by a kill " * 3), text(ANSWER))
    net.stores["w"] = pg_url
    writer = net.root / "writer.yaml"
    writer.write_text(WRITER_YAML)
    models = f"models: {{default: 'ollama_chat/{MODEL}', api_base: '{ollama.url}'}}\n"
    for replica in ("w1", "w2"):
        net.configure(replica, {"write": writer}, [], models, node="w")
    await net.start("w1", identity="w")
    w2 = await net.start("w2", identity="w")
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "Tell me."}]}
    params = {"message": message, "configuration": {"returnImmediately": True}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    async with client(net.certs) as http:
        sent = (await http.post(f"{net.url('w2')}/a2a", json=body, headers=V10)).json()
    task_id = sent["result"]["task"]["id"]

    seen: list[dict[str, Any]] = []

    async def subscribe() -> None:
        request = {"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask"}
        request["params"] = {"id": task_id}
        async with client(net.certs) as http:
            url = f"{net.url('w1')}/a2a"
            async with http.stream("POST", url, json=request, headers=V10) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[5:])["result"])

    reading = asyncio.create_task(subscribe())
    updates = lambda: [e["artifactUpdate"] for e in seen if "artifactUpdate" in e]  # noqa: E731
    await wait_until(lambda: len(updates()) >= 3, "chunks on the other replica", timeout=30)
    w2.send(signal.SIGKILL)
    w2.wait(10)
    await net.start("w2", identity="w")
    await asyncio.wait_for(reading, timeout=60)

    chunks = [u for u in updates() if u["artifact"]["artifactId"] == f"{task_id}-write-1"]
    flags = [(u.get("append", False), u.get("lastChunk", False)) for u in chunks]
    opened = [i for i, (append, _) in enumerate(flags) if not append]
    assert len(opened) == 2 and opened[0] == 0, flags  # opened, then opened again by the re-run
    again = "".join(u["artifact"]["parts"][0]["text"] for u in chunks[opened[1] :])
    assert again == ANSWER and flags[-1][1] is True
    assert seen[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert len(ollama.chats()) == 2
