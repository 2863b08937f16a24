"""Warm MCP tool-call latency through the tool node, against a direct ``call_tool``.

    .venv/bin/python bench/tools/tool_bench.py [--n 500] [--warmup 50] [--json FILE|-]

Two processes of the test server (``tests/support/mcp_server.py``) over
stdio, each started once and kept warm; this process then times, in rounds —
one call of each path per round, in the same order, so drift hits them
alike — the tool ``add(a, b)``:

* ``direct``: ``ClientSession.call_tool`` on a session of its own (the
  floor: what any MCP client pays for a warm call);
* ``pool``: :meth:`McpPool.call` (the adapter: a session looked up, the
  error boundary, the result read);
* ``executor``: :meth:`ToolExecutor.execute` on a compiled one-node
  workflow (arguments built from the state, the outcome made);
* ``workflow``: ``Runtime("memory://").run`` of that workflow — start,
  claim, the node, its commit, the end;
* ``node duration``: the ``duration`` the tool node recorded in
  ``node_completed`` during the ``workflow`` rounds (what ``inspect`` shows).

Each row: p50/p99/mean in ms over ``--n`` calls after ``--warmup`` rounds;
``+p50``/``+p99`` are the row's minus direct's. The target is a tool node
(``executor``) p50 under 5 ms. The pool's spawn count is printed: it must
be 1 (no process per call).

Only loopback is reachable from this process (``bench/common.py``'s
``block_network``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
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

SERVER = [sys.executable, str(ROOT / "tests/support/mcp_server.py")]
WORKFLOW = """
workflow:
  id: bench-tool
  version: "1"
  start: add
  state_schema: {a: integer, sum: {}}
nodes:
  add: {type: tool, server: bench, tool: add, arguments: {a: "{{ state.a }}", b: 2}, output: sum}
"""
TARGET_MS = 5.0


async def measure(args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], int]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from agent_node.config import McpServerConfig
    from agent_node.engine.executor import NodeContext
    from agent_node.integrations.mcp import McpPool
    from agent_node.nodes.tool import ToolExecutor
    from agent_node.runtime import Runtime
    from agent_node.workflow.yaml_loader import load_yaml_text

    workflow = load_yaml_text(WORKFLOW)
    state = workflow.state_model(a=1)
    data = state.model_dump(mode="json")
    spec = workflow.node("add")
    durations: list[float] = []

    async with AsyncExitStack() as stack:
        params = StdioServerParameters(command=SERVER[0], args=SERVER[1:])
        read, write = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        pool = await stack.enter_async_context(
            McpPool([McpServerConfig(name="bench", command=SERVER)])
        )
        executor = ToolExecutor(pool)
        runtime = await stack.enter_async_context(
            Runtime("memory://", executors={"tool": executor})
        )

        async def direct() -> Any:
            return await session.call_tool("add", {"a": 1, "b": 2})

        async def through_pool() -> Any:
            return await pool.call("bench", "add", {"a": 1, "b": 2})

        async def through_executor() -> Any:
            ctx = NodeContext("bench", workflow, spec, 1, 1, state, data, time.time())
            return await executor.execute(ctx)

        async def through_workflow() -> Any:
            result = await runtime.run(workflow, {"a": 1})
            if result.status != "completed":
                raise SystemExit(f"the workflow {result.status}: {result.error}")
            done = next(e for e in result.events if e.kind == "node_completed")
            durations.append(done.data["output"]["duration"])
            return result

        paths: dict[str, Timed] = {
            "direct": direct,
            "pool": through_pool,
            "executor": through_executor,
            "workflow": through_workflow,
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(args.warmup + args.n):
            for name, call in paths.items():
                elapsed = await atimed(call)
                if round_ >= args.warmup:
                    samples[name].append(elapsed)
        spawns = pool.spawns

    rows = {k: latency_stats(v) for k, v in samples.items()}
    rows["node duration"] = latency_stats(durations[args.warmup :])
    add_overheads(rows, "direct", ("pool", "executor", "workflow", "node duration"))
    return rows, spawns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="timed calls per path")
    parser.add_argument("--warmup", type=int, default=50, help="untimed rounds first")
    parser.add_argument("--json", metavar="FILE", help="also write JSON here ('-': stdout)")
    args = parser.parse_args()
    block_network()
    log(f"two stdio servers; {args.warmup} + {args.n} rounds")
    rows, spawns = asyncio.run(measure(args))
    print(latency_table(rows, 16))
    node = rows["executor"]["p50_ms"]
    verdict = "met" if node < TARGET_MS and spawns == 1 else "MISSED"
    print(f"\ntool node p50: {node:.3f} ms, pool spawns: {spawns} (target < 5 ms, 1: {verdict})")
    if args.json:
        report = {
            "bench": "tool_node_latency",
            "transport": "stdio",
            "n": args.n,
            "warmup": args.warmup,
            "rows": rows,
            "spawns": spawns,
            "target_p50_ms": TARGET_MS,
            "met": verdict == "met",
            "versions": package_versions("mcp", "anyio", "pydantic"),
        }
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
