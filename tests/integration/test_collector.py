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


def _printed(script: str, *args: str, **env: str) -> dict[str, object]:
    """What ``script``, run in a process of its own with ``args``, printed (JSON)."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _run(tmp_path: Path, **env: str) -> dict[str, object]:
    return _printed(_SCRIPT, f"sqlite:///{tmp_path}", **env)


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


_PASSES = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    from pydantic import BaseModel
    from agent_node import Runtime, Workflow

    class State(BaseModel):
        n: int = 0

    async def step(state: State) -> None:
        return None

    wf = Workflow("five", version="1")
    wf.state(State)
    for i in range(5):
        wf.step(step, name=f"s{i}")
    compiled = wf.compile()

    async def main():
        if sys.argv[2] == "off":
            gc.disable()  # the program's own choice
        passes = []
        async with Runtime(sys.argv[1]) as runtime:
            await asyncio.gather(*(runtime.run(compiled, {}) for _ in range(200)))  # warm
            gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info))
            for _ in range(5):  # 5,000 steps, 200 at a time
                done = await asyncio.gather(*(runtime.run(compiled, {}) for _ in range(200)))
                assert all(r.status == "completed" for r in done)
            gc.callbacks.clear()
        print(json.dumps({"passes": len(passes), "enabled_after": gc.isenabled()}))

    asyncio.run(main())
    """
)


def _passes(url: str, collector: str, **env: str) -> dict[str, object]:
    return _printed(_PASSES, url, collector, **env)


def test_concurrent_steps_spare_the_collector_its_passes_over_a_group_commit(
    durable_url: str, tmp_path: Path
) -> None:
    """A group commit's steps hold their objects until it commits: the
    collector is paused meanwhile, not run over them every 700 allocations
    (SQLite: ~425 passes for these 5,000 steps without the pause, ~15 with it)."""
    other = f"sqlite:///{tmp_path}/alone.db" if durable_url.startswith("sqlite") else durable_url
    paused = _passes(durable_url, "on")
    left_alone = _passes(other, "on", AGENT_NODE_GC_FREEZE="0")
    assert isinstance(paused["passes"], int) and isinstance(left_alone["passes"], int)
    assert left_alone["passes"] > 150, left_alone
    assert paused["passes"] < left_alone["passes"] / 5, (paused, left_alone)
    assert paused["enabled_after"] is True and left_alone["enabled_after"] is True


def test_a_collector_the_program_turned_off_stays_off(tmp_path: Path) -> None:
    seen = _passes(f"sqlite:///{tmp_path}/off.db", "off")
    assert seen == {"passes": 0, "enabled_after": False}


def test_a_pause_nobody_ends_ends_by_itself() -> None:
    """A commit stuck on its database does not hold the collector off."""
    script = textwrap.dedent(
        """
        import asyncio, gc, json
        from agent_node import collector

        async def main():
            collector.hold()
            collector.pause()
            paused = not gc.isenabled()
            await asyncio.sleep(collector.MAX_PAUSE + 0.05)
            print(json.dumps({"paused": paused, "on_again": gc.isenabled()}))
            collector.release()

        asyncio.run(main())
        """
    )
    assert _printed(script) == {"paused": True, "on_again": True}


def test_a_pause_begun_late_lasts_its_own_while_and_a_new_loop_is_watched() -> None:
    """One watch outlives the pauses: a pause begun just before it comes is
    ended a whole MAX_PAUSE after its own start, not at once; a loop closed
    while its watch was pending leaves the next loop's pauses watched."""
    script = textwrap.dedent(
        """
        import asyncio, gc, json
        from agent_node import collector

        out = {}

        async def first():
            collector.hold()
            collector.pause()
            collector.resume()
            await asyncio.sleep(collector.MAX_PAUSE * 0.8)
            collector.pause()  # the watch armed by the first pause comes soon
            await asyncio.sleep(collector.MAX_PAUSE * 0.4)
            out["still_paused"] = not gc.isenabled()
            await asyncio.sleep(collector.MAX_PAUSE * 0.8)
            out["ended"] = gc.isenabled()
            collector.pause()
            collector.resume()  # its loop closes with the watch pending

        async def second():
            collector.pause()
            await asyncio.sleep(collector.MAX_PAUSE + 0.05)
            out["ended_on_a_new_loop"] = gc.isenabled()
            collector.release()

        asyncio.run(first())
        asyncio.run(second())
        print(json.dumps(out))
        """
    )
    assert _printed(script) == {"still_paused": True, "ended": True, "ended_on_a_new_loop": True}


def test_pauses_leave_no_cancelled_timers_in_the_loop() -> None:
    """A pause a step, each with a timer of its own cancelled by its resume,
    piled cancelled timers up in the loop's heap behind any live timer due
    sooner (asyncio drops them from its head only): 100 to 200 of them,
    every timer pushed compared against them in Python."""
    script = textwrap.dedent(
        """
        import asyncio, gc, json
        from agent_node import collector

        async def main():
            collector.hold()
            loop = asyncio.get_running_loop()
            soon = loop.call_later(collector.MAX_PAUSE / 2, lambda: None)  # live, due first
            most = 0
            for _ in range(1000):
                collector.pause()
                collector.resume_soon(loop)
                await asyncio.sleep(0)
                most = max(most, len(loop._scheduled))
            soon.cancel()
            collector.release()
            print(json.dumps({"most_timers": most, "on": gc.isenabled()}))

        asyncio.run(main())
        """
    )
    found = _printed(script)
    assert found["on"] is True
    assert isinstance(found["most_timers"], int) and found["most_timers"] <= 3, found
