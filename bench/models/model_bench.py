"""What the model node adds to a model call: node minus direct ``litellm.acompletion``.

    .venv/bin/python bench/models/model_bench.py [--n 500] [--warmup 50] [--stream]
        [--reply TEXT] [--json FILE|-]

One fake Ollama (``tests/support/fake_ollama.py``) in a process of its own,
answering every ``/api/chat`` with ``--reply`` (as NDJSON chunks with
``--stream``); this process then times, in rounds — one call of each path per
round, so drift hits them alike, the order rotated from round to round
(litellm's logging of a call runs on in the background into the next call,
so each path must follow each other path as often):

* ``direct``: ``litellm.acompletion(model, messages, api_base=…)`` with the
  same options and the same kind of connection pool as the adapter — the
  floor: what any caller of litellm pays;
* ``client``: :meth:`LlmClient.complete` (the adapter: options, error
  boundary, reading the answer, usage and cost);
* ``executor``: :meth:`ModelExecutor.execute` on a compiled one-node
  workflow (templates rendered, messages built, the outcome made);
* ``workflow``: ``Runtime("memory://").run`` of that workflow — the whole
  node as an execution sees it: start, claim, the node, its commit (events
  with usage), the end.

Each row: p50/p99/mean in ms over ``--n`` calls after ``--warmup``; the
overhead rows are the row's p50/p99 minus direct's. The target is a p50
overhead of the model node (``executor``) under 2 ms.

``litellm defaults`` is measured once before the rounds, for the record:
``acompletion`` as a newcomer calls it, with litellm's own pool and its
``/api/show`` lookups (three to five blocking requests per call to an
unregistered Ollama model; the adapter registers the model, after which the
direct path no longer makes them either).

Only loopback is reachable from this process (``bench/common.py``'s
``block_network``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    Timed,
    add_overheads,
    atimed,
    block_network,
    latency_stats,
    latency_table,
    log,
    package_versions,
)

MODEL = "ollama_chat/llama3.2:1b"
WORKFLOW = """
workflow:
  id: bench-model
  version: "1"
  start: ask
  state_schema: {city: string, answer: {type: string, default: ""}}
nodes:
  ask:
    type: model
    system: "You are terse."
    prompt: "Weather in {{ state.city }}?"
    output: answer
    stream: STREAM
"""


def start_fake(reply: str) -> tuple[subprocess.Popen[str], str]:
    script = ROOT / "tests/support/fake_ollama.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--reply", reply],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the fake Ollama did not start (said {url!r})")
    return proc, url


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from agent_node.config import ModelSettings
    from agent_node.engine.executor import NodeContext
    from agent_node.integrations.llm import LlmClient, load_litellm
    from agent_node.nodes.model import ModelExecutor
    from agent_node.runtime import Runtime
    from agent_node.workflow.yaml_loader import load_yaml_text

    os.environ["OLLAMA_API_BASE"] = url
    litellm = await asyncio.to_thread(load_litellm)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    stream = {"stream": True, "stream_options": {"include_usage": True}} if args.stream else {}

    async def newcomer() -> Any:
        response = await litellm.acompletion(model=MODEL, messages=messages, api_base=url, **stream)
        if args.stream:
            chunks = [chunk async for chunk in response]
            return litellm.stream_chunk_builder(chunks, messages=messages)
        return response

    defaults = [await atimed(newcomer) for _ in range(max(10, args.warmup))]

    client = LlmClient(ModelSettings(default=MODEL, api_base=url))
    await client.complete(MODEL, messages)  # registers the model
    import httpx
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    # The kind of pool the adapter uses, so direct and client compare alike.
    pool = AsyncHTTPHandler(timeout=client.settings.timeout, transport=httpx.AsyncHTTPTransport())

    async def direct() -> Any:
        options = {"timeout": client.settings.timeout, "api_base": url, "client": pool}
        response = await litellm.acompletion(model=MODEL, messages=messages, **options, **stream)
        if args.stream:
            chunks = [chunk async for chunk in response]
            return litellm.stream_chunk_builder(chunks, messages=messages)
        return response

    workflow = load_yaml_text(WORKFLOW.replace("STREAM", "true" if args.stream else "false"))
    state = workflow.state_model(city="Paris")
    data = state.model_dump(mode="json")
    spec = workflow.node("ask")
    executor = ModelExecutor(client)
    runtime = Runtime("memory://", executors={"model": executor})
    await runtime.start()

    async def through_client() -> Any:
        return await client.complete(MODEL, messages, stream=args.stream)

    async def through_executor() -> Any:
        ctx = NodeContext("bench", workflow, spec, 1, 1, state, data, time.time())
        return await executor.execute(ctx)

    async def through_workflow() -> Any:
        result = await runtime.run(workflow, {"city": "Paris"})
        if result.status != "completed":
            raise SystemExit(f"the workflow {result.status}: {result.error}")
        return result

    paths: dict[str, Timed] = {
        "direct": direct,
        "client": through_client,
        "executor": through_executor,
        "workflow": through_workflow,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        order = list(paths)
        for round_ in range(args.warmup + args.n):
            # Rotated: litellm's logging runs on after each call, into the next.
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                elapsed = await atimed(paths[name])
                if round_ >= args.warmup:
                    samples[name].append(elapsed)
    finally:
        await runtime.close()
        await client.aclose()
        await pool.close()
    rows = {"litellm defaults": latency_stats(defaults)} | {
        k: latency_stats(v) for k, v in samples.items()
    }
    add_overheads(rows, "direct", ("client", "executor", "workflow"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="timed calls per path")
    parser.add_argument("--warmup", type=int, default=50, help="untimed rounds first")
    parser.add_argument("--stream", action="store_true", help="stream the answers (NDJSON)")
    parser.add_argument("--reply", default="Sunny, 24 °C, light wind from the west.")
    parser.add_argument("--json", metavar="FILE", help="also write JSON here ('-': stdout)")
    args = parser.parse_args()
    block_network()
    proc, url = start_fake(args.reply)
    try:
        log(f"fake Ollama at {url}; {args.warmup} + {args.n} rounds, stream={args.stream}")
        rows = asyncio.run(measure(args, url))
    finally:
        proc.terminate()
        proc.wait(10)
    print(latency_table(rows, 18))
    executor = rows["executor"]["overhead_p50_ms"]
    verdict = "met" if executor < 2.0 else "MISSED"
    print(f"\nmodel node p50 overhead: {executor:.3f} ms (target < 2 ms: {verdict})")
    if args.json:
        report = {
            "bench": "model_node_overhead",
            "stream": args.stream,
            "n": args.n,
            "warmup": args.warmup,
            "rows": rows,
            "target_p50_overhead_ms": 2.0,
            "met": executor < 2.0,
            "versions": package_versions("litellm", "pydantic", "httpx", "uvicorn"),
        }
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
