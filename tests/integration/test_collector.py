"""While a runtime runs, what was alive at its start is kept out of the
collector's full passes (agent_node/collector.py), and given back when the last
runtime closes. Each case runs in a process of its own: the collector's
state is the process's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys, weakref
    from agent_node import Runtime

    class Node:
        pass

    async def main():
        out = {}
        # a cycle alive when the runtimes start, dropped while they run
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        first = Runtime(sys.argv[1] + "/one.db")
        second = Runtime(sys.argv[1] + "/two.db")
        await first.start()
        out["frozen_running"] = gc.get_freeze_count()
        await second.start()
        del a, b
        gc.collect()
        out["cycle_collected_while_running"] = gone() is None
        await first.close()
        out["frozen_one_left"] = gc.get_freeze_count()
        await second.close()
        out["frozen_after"] = gc.get_freeze_count()
        gc.collect()
        out["cycle_collected_after"] = gone() is None
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def _run(tmp_path: Path, **env: str) -> dict[str, object]:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, f"sqlite:///{tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_heap_a_runtime_starts_with_is_frozen_until_the_last_one_closes(
    tmp_path: Path,
) -> None:
    seen = _run(tmp_path)
    assert isinstance(seen["frozen_running"], int) and seen["frozen_running"] > 10_000
    # frozen: a full pass does not free even a dead cycle of it …
    assert seen["cycle_collected_while_running"] is False
    assert seen["frozen_one_left"] != 0  # … while any runtime runs
    assert seen["frozen_after"] == 0  # the last one gives it back
    assert seen["cycle_collected_after"] is True


def test_agent_node_gc_freeze_0_leaves_the_collector_alone(tmp_path: Path) -> None:
    seen = _run(tmp_path, AGENT_NODE_GC_FREEZE="0")
    assert seen["frozen_running"] == 0
    assert seen["cycle_collected_while_running"] is True
