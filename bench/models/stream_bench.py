"""A model's streamed tokens through a node to an A2A subscriber: latency and throughput.

    .venv/bin/python bench/models/stream_bench.py [--tokens 400] [--rate 100] \
        [--burst 20000] [--ports FIRST] [--json FILE|-]

Three processes on loopback: a fake Ollama (this script with ``--fake``)
streaming NDJSON chunks of one token each, every token's text the moment it
was emitted (``time.time_ns()``); ``agent-node serve --insecure-dev`` with a
one-node workflow (a model node, streamed, its answer the task's artifact)
on SQLite; and this process, the subscriber: ``SendStreamingMessage`` over
JSON-RPC, reading the SSE as it comes and timing each ``artifactUpdate``
chunk against the emission times its text carries.

* ``latency``: ``--tokens`` tokens paced at ``--rate`` per second: the time
  from the fake model emitting a token to the subscriber reading it
  (p50/p99/max), through the node's model client, its live channel and its
  SSE — twice: read directly (the default for plain streamed text,
  :mod:`agent_node.integrations.direct_stream`) and through litellm
  (``models.via_litellm: true``).
  Target: < 5 ms at p50 (a hop of a chain adds one such time).
* ``throughput``: ``--burst`` tokens emitted back to back: tokens the
  subscriber read per second, from its first chunk to its last. Target: >=
  20,000 tokens/s through one node.

Both again with the node's own path alone (``own_path``): the same workflow
served in-process by a node whose model client writes the tokens itself (no
HTTP, no litellm), so the live channel, the task's watch and the SSE are
what is measured; the difference is litellm's streaming (its per-chunk
wrapper was ~65 % of the node's CPU in a py-spy profile).

Each node is sent work once it is ready (``/readyz`` 200; the relay node,
which has no probes, once its card answers): a node answers 503 "the node
is starting" for a while after its port opens, and a send then gets no
tokens. Ports: free ones, or ``--ports FIRST`` and the three after it.

Prints a table and, with ``--json``, the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL = "ollama_chat/llama3.2:1b"
WORKFLOW = """
workflow:
  id: tokens
  version: "1"
  start: write
  state_schema: {text: {type: string, default: ""}, reply: {type: string, default: ""}}
nodes:
  write: {type: model, prompt: "{{ state.text }}", output: reply, next: done}
  done: {type: end, output: [reply]}
"""


# -- the fake model --------------------------------------------------------------


def fake(port: int) -> None:
    """A fake Ollama whose answer to ``N@RATE`` is N tokens at RATE per
    second (0: back to back), each token's text its emission time in ns."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        body = await request.json()
        asked = str(body["messages"][-1]["content"])
        count, rate = (float(x) for x in asked.split("@"))

        async def tokens() -> Any:
            start = time.perf_counter()
            for index in range(int(count)):
                if rate:
                    delay = start + index / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                piece = {"role": "assistant", "content": f"{time.time_ns()} "}
                yield (json.dumps({"model": "m", "message": piece, "done": False}) + "\n").encode()
            done = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True}
            done |= {"prompt_eval_count": 1, "eval_count": int(count)}
            yield (json.dumps(done) + "\n").encode()

        return StreamingResponse(tokens(), media_type="application/x-ndjson")

    async def show(request: Request) -> Response:
        return JSONResponse(
            {"template": "", "model_info": {"llama.context_length": 8192}, "capabilities": []}
        )

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "0.12.6"})

    routes = [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/version", version),
    ]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")


# -- the node without litellm ----------------------------------------------------


class Tokens:
    """A ModelClient writing ``N@RATE`` tokens itself (no HTTP, no litellm):
    what is left is the node's own path, live channel to SSE."""

    default_model = "bench/tokens"

    async def complete(self, model: str, messages: Any, **options: Any) -> Any:
        from agent_node.nodes.model_client import Completion

        count, rate = (float(x) for x in str(messages[-1]["content"]).split("@"))
        on_text = options.get("on_text")
        start = time.perf_counter()
        for index in range(int(count)):
            if rate:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # as a socket read would: the loop turns
            if on_text is not None:
                on_text(f"{time.time_ns()} ")
        return Completion(model=model, text="done", latency_s=time.perf_counter() - start)


def relay_node(port: int, scratch: Path) -> None:
    """Serve the one-node workflow with :class:`Tokens` as its model."""
    import uvicorn

    from agent_node import Runtime
    from agent_node.a2a.server.app import Guard, create_app
    from agent_node.a2a.server.card import CardDocument
    from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
    from agent_node.a2a.server.tasks import TaskService
    from agent_node.nodes.model import ModelExecutor
    from agent_node.workflow.yaml_loader import load_yaml_text

    async def serve() -> None:
        executors = {"model": ModelExecutor(Tokens())}
        store = f"sqlite:///{scratch}/relay.db"
        async with Runtime(store, scope="all", executors=executors) as runtime:
            service = TaskService(
                runtime, {"write": load_yaml_text(WORKFLOW)}, default_skill="write"
            )
            endpoint = jsonrpc_endpoint(service, capabilities={"streaming": True})
            app = create_app(CardDocument.of({"name": "tokens"}), endpoint, guard=Guard())
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            await uvicorn.Server(config).serve()

    asyncio.run(serve())


# -- the subscriber --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What says a node is ready for work: its readiness probe; the relay node
#: (no probes, its runtime started before it listens) its card.
READY = "/readyz"
CARD = "/.well-known/agent-card.json"
#: Loopback asked directly, whatever proxy the environment names.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(port: int, proc: subprocess.Popen[bytes], what: str, path: str | None) -> None:
    """Until ``path`` answers 200 on ``port`` (None: until the port accepts)."""
    deadline = time.monotonic() + 60
    said = "nothing"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode})")
        try:
            if path is None:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            with LOOPBACK.open(f"http://127.0.0.1:{port}{path}", timeout=1):
                return  # a 200 (urllib raises on any other status)
        except urllib.error.HTTPError as exc:
            said = f"{exc.code} {exc.read()[:200].decode(errors='replace')}"
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} was not ready within 60 s ({path or 'its port'}: {said})")


async def stream_once(url: str, count: int, rate: float) -> tuple[list[float], list[float]]:
    """One streamed send; (latencies in ms, arrival times in s) of each token."""
    import httpx

    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": {
            "message": {
                "messageId": f"m-{time.time_ns()}",
                "role": "ROLE_USER",
                "parts": [{"text": f"{count}@{rate}"}],
            }
        },
    }
    latencies: list[float] = []
    arrivals: list[float] = []
    async with httpx.AsyncClient(timeout=300) as http:
        headers = {"A2A-Version": "1.0"}
        async with http.stream("POST", f"{url}/a2a", json=body, headers=headers) as response:
            if response.status_code != 200:
                said = (await response.aread())[:300].decode(errors="replace")
                raise SystemExit(f"the send was refused: HTTP {response.status_code}: {said}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.time_ns()
                answer = json.loads(line[5:])
                if "result" not in answer:
                    raise SystemExit(f"the send failed: {answer.get('error', answer)}")
                event = answer["result"]
                update = event.get("artifactUpdate")
                if not update or update["artifact"].get("name") != "write":
                    continue
                for stamp in update["artifact"]["parts"][0]["text"].split():
                    latencies.append((now - int(stamp)) / 1e6)
                    arrivals.append(now / 1e9)
    if not latencies:
        raise SystemExit(f"{count} tokens asked of the node at {url}, none came")
    return latencies, arrivals


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    await stream_once(url, 50, 0)  # warm-up: litellm loaded, connections open
    latencies, _ = await stream_once(url, args.tokens, args.rate)
    burst_started = time.time()
    got, arrivals = await stream_once(url, args.burst, 0)
    elapsed = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "latency": {
            "tokens": len(latencies),
            "rate": args.rate,
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies),
        },
        "throughput": {
            "tokens": len(got),
            "tokens_per_s": len(got) / elapsed,
            "first_token_after_s": arrivals[0] - burst_started,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--relay-node", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument("--ports", type=int, help="the first of four ports (default: free ones)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.fake:
        fake(args.fake)
        return
    if args.relay_node:
        relay_node(args.relay_node, Path(tempfile.mkdtemp(prefix="stream-relay-")))
        return
    ports = iter(range(args.ports, args.ports + 4)) if args.ports else None

    def port() -> int:
        return next(ports) if ports is not None else free_port()

    fake_port = port()
    procs = [subprocess.Popen([sys.executable, __file__, "--fake", str(fake_port)])]
    figures: dict[str, Any] = {}
    try:
        wait_for(fake_port, procs[0], "the fake model", None)
        for path, via_litellm in (("direct", False), ("litellm", True)):
            node_port = port()
            scratch = Path(tempfile.mkdtemp(prefix="stream-bench-"))
            (scratch / "tokens.yaml").write_text(WORKFLOW)
            (scratch / "agent-node.yaml").write_text(
                f"name: tokens\nlisten: {{host: 127.0.0.1, port: {node_port}}}\n"
                f"store: sqlite:///{scratch}/node.db\n"
                f"models: {{default: {MODEL}, api_base: 'http://127.0.0.1:{fake_port}',"
                f" via_litellm: {str(via_litellm).lower()}}}\n"
                "skills:\n  - {id: write, workflow: tokens.yaml, default: true}\n"
            )
            node = [sys.executable, "-m", "agent_node.cli.main", "serve", "--insecure-dev"]
            node += ["--config", str(scratch / "agent-node.yaml")]
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            served = subprocess.Popen(node, cwd=scratch, env=env, stdout=subprocess.DEVNULL)
            procs.append(served)
            wait_for(node_port, served, "the node", READY)
            figures[path] = asyncio.run(measure(args, f"http://127.0.0.1:{node_port}"))
            served.terminate()
            served.wait(10)
        relay_port = port()
        procs.append(subprocess.Popen([sys.executable, __file__, "--relay-node", str(relay_port)]))
        wait_for(relay_port, procs[-1], "the node without litellm", CARD)
        figures["own_path"] = asyncio.run(measure(args, f"http://127.0.0.1:{relay_port}"))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    paths = (
        ("through the model server, read directly (the default)", figures["direct"]),
        ("through the model server and litellm (models.via_litellm)", figures["litellm"]),
        ("the node's own path (no HTTP model server)", figures["own_path"]),
    )
    for name, what in paths:
        lat, thr = what["latency"], what["throughput"]
        print(
            f"{name}: latency, {lat['tokens']} tokens at {lat['rate']:.0f}/s, model → subscriber:"
        )
        p50, p99, top = lat["p50_ms"], lat["p99_ms"], lat["max_ms"]
        print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {top:.2f} ms")
        rate = thr["tokens_per_s"]
        print(f"  throughput, {thr['tokens']} tokens back to back: {rate:,.0f} tokens/s")
        print(
            f"  targets: p50 < 5 ms {'PASS' if lat['p50_ms'] < 5 else 'FAIL'};"
            f" >= 20,000 tokens/s {'PASS' if thr['tokens_per_s'] >= 20000 else 'FAIL'}"
        )
    if args.json:
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
