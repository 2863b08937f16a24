"""A model's streamed tokens to an A2A subscriber, from one node and through a chain: ms per hop.

    .venv/bin/python bench/models/chain_bench.py [--tokens 200] [--rate 50] [--requests 5] \
        [--json FILE|-] [--keep-tmp]

Measures the time from a fake model emitting a token to an A2A subscriber
reading it, p50/p99/max, in two setups of one run, every node an ``agent-node
serve`` process over mutual TLS (certificates by ``agent_node.security.pki``,
trust domain ``bench.test``) on its own SQLite file in a scratch directory:

* ``direct``: the subscriber asks node ``solo``, whose skill ``write`` is one
  streamed model node (``ollama_chat/llama3.2:1b`` through real litellm).
* ``chain``: the subscriber asks A, whose skill delegates to B's, which
  delegates to C's ``write`` (delegate nodes sending the text, as
  ``tests/e2e/test_live_chain.py`` does); C's tokens reach the subscriber as
  ``artifactUpdate`` chunks relayed by B and A (an ``artifactId`` with ``/``).

The fake Ollama runs in this process (uvicorn in a thread): its answer to every
chat is ``--tokens`` NDJSON chunks paced at ``--rate`` per second, each
token's text ``<NS> ``, NS the ``time.monotonic_ns()`` when it was emitted.
The subscriber (``SendStreamingMessage``, JSON-RPC, SSE over mutual TLS) takes
``monotonic_ns()`` as each SSE line arrives and subtracts every ``<NS>`` the
chunk carries (a chunk can hold several tokens when a reader lagged).
CLOCK_MONOTONIC is system-wide on Linux, so the stamps compare across
processes. One warm-up request per setup, then ``--requests`` per setup,
one at a time, alternating direct and chain so that drift hits both alike.

"Added per hop at p50" is (chain p50 - direct p50) / 2: the chain has two hops
more than the direct setup (B and A). Target: < 5 ms per hop at p50.

Prints a table and, with ``--json``, the figures. Exit status 1 when a token
was lost or a request failed (not when the target is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "llama3.2:1b"
TRUST_DOMAIN = "bench.test"
CLIENT = "client"
NODES = ("solo", "a", "b", "c")
HOP_TARGET_MS = 5.0
STAMP = re.compile(rb"<(\d+)>")
V10 = {"A2A-Version": "1.0"}

WRITER = """
workflow:
  id: writer
  version: '1'
  start: write
  state_schema: {text: {type: string, default: ""}, reply: {type: string, default: ""}}
nodes:
  write: {type: model, prompt: "{{ state.text }}", output: reply, next: done}
  done: {type: end, output: [reply]}
"""

RELAY = """
workflow:
  id: relay
  version: "1"
  start: ask
  state_schema:
    type: object
    properties:
      text: {{type: string}}
      answer: {{type: object}}
      verdict: {{type: string}}
nodes:
  ask:
    type: delegate
    peer: {peer}
    skill: {skill}
    text: '{{{{ state.text }}}}'
    output: answer
    fields: {{verdict: {keep}}}
    next: done
  done: {{type: end, output: [verdict]}}
"""


# -- the fake model ----------------------------------------------------------------------


def fake_ollama(tokens: int, rate: float) -> Starlette:
    """Ollama as litellm sees it; every chat answered by ``tokens`` streamed
    chunks at ``rate`` per second, each token's text its emission time."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", MODEL))
        return StreamingResponse(stream(model, tokens, rate), media_type="application/x-ndjson")

    async def show(request: Request) -> Response:
        return JSONResponse(
            {
                "template": "{{ .System }}{{ .Prompt }}",
                "details": {"family": "llama", "format": "gguf"},
                "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
                "capabilities": ["completion"],
            }
        )

    async def tags(request: Request) -> Response:
        return JSONResponse({"models": [{"name": MODEL, "model": MODEL, "size": 1}]})

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "0.12.6"})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/show", show, methods=["POST"]),
            Route("/api/tags", tags),
            Route("/api/version", version),
        ]
    )


async def stream(model: str, tokens: int, rate: float) -> AsyncIterator[bytes]:
    start = time.monotonic()
    for index in range(tokens):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        piece = {"role": "assistant", "content": f"<{time.monotonic_ns()}> "}
        yield line({"model": model, "created_at": now(), "message": piece, "done": False})
    last = {"model": model, "created_at": now(), "done": True, "done_reason": "stop"}
    last |= {"message": {"role": "assistant", "content": ""}}
    yield line(last | {"prompt_eval_count": 8, "eval_count": tokens, "eval_duration": 1})


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


@contextlib.contextmanager
def in_thread(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn in a thread of its own; its URL."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Ollama did not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- the nodes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Nodes:
    """The node processes of the run, each on its port, all stopped by :meth:`stop`."""

    scratch: Path
    certs: Path
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in NODES})
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.ports[name]}"

    def configure(self, name: str, skill: str, extra: dict[str, Any]) -> None:
        config = {
            "name": name,
            "listen": {"host": "127.0.0.1", "port": self.ports[name]},
            "store": f"sqlite:///{self.scratch / name}.db",
            "skills": [{"id": skill, "workflow": f"{name}-skill.yaml", "default": True}],
            # Every delegation asks its peer to push to a loopback URL.
            "push": {"allow": ["127.0.0.0/8"]},
            **extra,
        }
        (self.scratch / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def peer(self, name: str) -> dict[str, Any]:
        identity = f"spiffe://{TRUST_DOMAIN}/agent/{name}"
        return {"peers": [{"name": name, "url": self.url(name), "identity": identity}]}

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "agent_node.cli.main", "serve"]
        command += ["--config", f"{name}.yaml", "--cert-dir", str(self.certs), "--identity", name]
        with (self.scratch / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen(
                command, cwd=self.scratch, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, name: str) -> None:
        log, proc = self.scratch / f"{name}.log", self.procs[name]
        deadline = time.monotonic() + 60
        while b"listening on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {name} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_certs(folder: Path) -> Path:
    from agent_node.security import pki

    pki.init_ca(folder, trust_domain=TRUST_DOMAIN)
    for name in (*NODES, CLIENT):
        pki.issue(folder, name)
    return folder


def launch(nodes: Nodes, ollama: str) -> None:
    """solo and C serve the model node; B relays C's, A relays B's."""
    scratch = nodes.scratch
    models = {"models": {"default": f"ollama_chat/{MODEL}", "api_base": ollama}}
    for name in ("solo", "c"):
        (scratch / f"{name}-skill.yaml").write_text(WRITER)
        nodes.configure(name, "write", models)
    for name, peer, skill, keep in (
        ("b", "c", "write", "text"),
        ("a", "b", "relay", "data.verdict"),
    ):
        relay = RELAY.format(peer=peer, skill=skill, keep=keep)
        (scratch / f"{name}-skill.yaml").write_text(relay)
        nodes.configure(name, "relay", nodes.peer(peer))
    for name in NODES:
        nodes.start(name)
    for name in NODES:
        nodes.wait_ready(name)


# -- the subscriber ----------------------------------------------------------------------


@dataclass
class Setup:
    """One way of reaching the model: which node, which chunks carry its tokens."""

    name: str
    path: str
    node: str
    relayed: bool
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0

    def carries(self, update: dict[str, Any]) -> bool:
        """A chunk of the model's text: relayed (C's, through B and A: an id
        with '/') or the model node's own (its name, no '/')."""
        artifact = update["artifact"]
        if self.relayed:
            return "/" in artifact["artifactId"]
        return artifact.get("name") == "write" and "/" not in artifact["artifactId"]


async def ask(http: httpx.AsyncClient, url: str, setup: Setup, seq: int) -> list[float]:
    """One ``SendStreamingMessage``: the latency (ms) of every token read."""
    message = {"messageId": f"m-{setup.name}-{seq}", "role": "ROLE_USER", "parts": [{"text": "go"}]}
    body = {
        "jsonrpc": "2.0",
        "id": seq,
        "method": "SendStreamingMessage",
        "params": {"message": message},
    }
    latencies: list[float] = []
    state = ""
    async with http.stream("POST", f"{url}/a2a", json=body, headers=V10) as response:
        async for text in response.aiter_lines():
            if not text.startswith("data:"):
                continue
            arrived = time.monotonic_ns()
            event = json.loads(text[5:])
            if "error" in event:
                raise RuntimeError(f"{setup.name}: {event['error']}")
            result = event["result"]
            state = result.get("statusUpdate", {}).get("status", {}).get("state", state)
            update = result.get("artifactUpdate")
            if update is None or not setup.carries(update):
                continue
            for part in update["artifact"]["parts"]:
                for stamp in STAMP.findall(part.get("text", "").encode()):
                    latencies.append((arrived - int(stamp)) / 1e6)
    if state != "TASK_STATE_COMPLETED":
        raise RuntimeError(f"{setup.name}: the task ended {state or 'without a state'}")
    return latencies


async def measure(nodes: Nodes, setups: list[Setup], requests: int, tokens: int) -> list[str]:
    """A warm-up per setup, then ``requests`` each, alternating; the problems seen."""
    from agent_node.security.tls import client_context

    certs = nodes.certs
    context: ssl.SSLContext = client_context(
        certs / f"{CLIENT}.pem", certs / f"{CLIENT}-key.pem", [certs / "ca.pem"]
    )
    problems: list[str] = []
    async with httpx.AsyncClient(verify=context, timeout=120) as http:
        for seq in range(requests + 1):
            for setup in setups:
                got = await ask(http, nodes.url(setup.node), setup, seq)
                if len(got) != tokens:
                    problems.append(f"{setup.name} request {seq}: {len(got)} of {tokens} tokens")
                if seq:  # 0 is the warm-up
                    setup.latencies_ms += got
                    setup.requests += 1
    return problems


# -- the report --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(setup: Setup) -> dict[str, Any]:
    got = setup.latencies_ms
    return {
        "path": setup.path,
        "requests": setup.requests,
        "tokens": len(got),
        "p50_ms": statistics.median(got),
        "p99_ms": percentile(got, 0.99),
        "max_ms": max(got),
    }


def print_grid(table: list[list[str]]) -> None:
    """Aligned columns (the first two flush left), a rule under the header line."""
    widths = [max(len(cells[i]) for cells in table) for i in range(len(table[0]))]
    for n, cells in enumerate(table):
        aligned = zip(cells, widths, strict=True)
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(aligned)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    print(
        "Model token -> A2A subscriber (SendStreamingMessage, JSON-RPC over mutual TLS):"
        f" {args.tokens} tokens at {args.rate:g}/s per answer; one warm-up, then"
        f" {args.requests} requests per setup, alternating"
    )
    table = [["setup", "path", "requests", "tokens", "p50 ms", "p99 ms", "max ms"]]
    for name, row in rows.items():
        counts = [str(row["requests"]), str(row["tokens"])]
        times = [f"{row[key]:.2f}" for key in ("p50_ms", "p99_ms", "max_ms")]
        table.append([name, row["path"], *counts, *times])
    print_grid(table)
    hop = (rows["chain"]["p50_ms"] - rows["direct"]["p50_ms"]) / 2
    hop_p99 = (rows["chain"]["p99_ms"] - rows["direct"]["p99_ms"]) / 2
    verdict = "PASS" if hop < HOP_TARGET_MS else "FAIL"
    print(f"added per hop at p50: {hop:.2f} ms (target < {HOP_TARGET_MS:g} ms: {verdict})")
    print(f"added per hop at p99: {hop_p99:.2f} ms (no target)")
    return {"per_hop_p50_ms": hop, "per_hop_p99_ms": hop_p99, "pass": hop < HOP_TARGET_MS}


def run(args: argparse.Namespace, setups: list[Setup]) -> list[str]:
    """Start the fake model and the nodes, measure, stop them all; the problems seen.
    The scratch directory (the nodes' logs) stays when asked to or when the run failed."""
    scratch = Path(tempfile.mkdtemp(prefix="chain-bench-"))
    nodes = Nodes(scratch, make_certs(scratch / "certs"))
    keep = args.keep_tmp
    try:
        with in_thread(fake_ollama(args.tokens, args.rate)) as ollama:
            launch(nodes, ollama)
            return asyncio.run(measure(nodes, setups, args.requests, args.tokens))
    except Exception:
        keep = True
        raise
    finally:
        nodes.stop()
        if keep:
            print(f"scratch (the nodes' logs): {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--requests", type=int, default=5, help="measured requests per setup")
    parser.add_argument("--json", help="also write the figures to FILE (- for stdout)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    # SIGTERM as Ctrl-C: run() stops the nodes either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    setups = [
        Setup("direct", "subscriber <- solo", "solo", relayed=False),
        Setup("chain", "subscriber <- A <- B <- C", "a", relayed=True),
    ]
    try:
        problems = run(args, setups)
    except KeyboardInterrupt:
        print("interrupted; the nodes are stopped", file=sys.stderr)
        return 130
    rows = {setup.name: figures(setup) for setup in setups}
    outcome = report(rows, args)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if args.json:
        text = json.dumps({"settings": vars(args), "setups": rows, **outcome}, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
