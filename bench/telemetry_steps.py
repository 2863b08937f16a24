"""The step workflows of ``telemetry_bench.py`` run with a setting's
telemetry attached: timed in a child (``seq`` / ``conc``), or one unit at a
time for :mod:`telemetry_paired`."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from pathlib import Path
from typing import Any

from telemetry_bench import (
    _RUNS,
    CONC_RUNS,
    CONC_STEPS,
    CONC_WORKFLOWS,
    SEQ_RUNS,
    SEQ_STEPS,
    _workflows,
)

#: Set by ``--instructions`` (:mod:`telemetry_counted`): how many times slower
#: than at full speed the child runs under callgrind.
SLOWDOWN = "TELEMETRY_BENCH_SLOWDOWN"


def stretch_timers(factor: float) -> None:
    """Run the node's timers ``factor`` times longer: under callgrind (~70 times
    slower) a commit held 50 ms for the traces, a checkpoint 250 ms after a
    commit or a collector paused 100 ms at most would otherwise come after a
    seventieth of the steps they come after at full speed, and each count would
    weigh them as the valgrind run's pace fell (``OTEL_BSP_SCHEDULE_DELAY``,
    the batch processor's, is stretched by the parent)."""
    from agent_node import collector
    from agent_node.store import notify, sqlite_checkpoints, sqlite_writer
    from agent_node.telemetry import traces_follow

    notify.HOLD *= factor
    traces_follow.BUNDLE_WAIT *= factor
    sqlite_checkpoints._CHECKPOINT_DELAY *= factor
    sqlite_writer._PASS_EVERY *= factor
    collector.MAX_PAUSE *= factor


class StepRunner:
    """One ``Runtime`` on SQLite with a setting's telemetry attached as
    :mod:`agent_node.node` attaches it; runs the step workflows (each
    execution with a ``traceparent``, as an A2A task has)."""

    def __init__(self, setting: str, work: Path, endpoint: str) -> None:
        self.setting, self.work, self.endpoint = setting, work, endpoint
        self.seq, self.conc, self.state = _workflows()
        self.metrics: Any = None
        self.traces: Any = None

    async def start(self) -> None:
        from agent_node.runtime import Runtime
        from agent_node.settings_telemetry import TelemetrySettings
        from agent_node.telemetry.metrics import NodeMetrics
        from agent_node.telemetry.traces import start_traces

        self.runtime = runtime = Runtime(
            f"sqlite:///{self.work / 'steps.db'}", node="bench", scope="all"
        )
        await runtime.start()
        if self.setting != "off":  # as agent_node.node attaches them
            self.metrics = NodeMetrics(runtime.store, runtime.workflows, "bench")
            runtime.engine.claimed_hooks.append(self.metrics.claimed)
        if self.setting == "traces":
            telemetry = TelemetrySettings.model_validate({"traces": {"endpoint": self.endpoint}})
            self.traces = start_traces(
                telemetry, node="bench", runtime=runtime, metrics=self.metrics
            )
        for workflow in (self.seq, self.conc):
            runtime.workflows.add(workflow)
        # As a node does once it serves (agent_node.node._freeze_startup_objects):
        # what start-up made — modules, OpenTelemetry's among them — is out of
        # the cyclic collector's reach, so a setting is not charged for walking
        # its imports at every full collection.
        gc.collect()
        gc.freeze()

    async def run(self, workflow: Any) -> None:
        from agent_node.tracing import new_traceparent

        engine = self.runtime.engine
        metadata = {"traceparent": new_traceparent(), "trace_root": True}
        execution_id, _ = await engine.submit(workflow, self.state(), metadata=metadata, watch=True)
        try:
            record = await engine.wait(execution_id)
        finally:
            engine.release(execution_id)
        if record.status != "completed":
            raise RuntimeError(f"{execution_id}: {record.status}")

    async def batch(self, count: int) -> float:
        began = time.perf_counter()
        await asyncio.gather(*(self.run(self.conc) for _ in range(count)))
        return time.perf_counter() - began

    async def unit(self, measure: str) -> int:
        """One run of ``measure`` (a 200-step workflow, or a batch of 200
        of 5 steps); the steps it ran."""
        if measure == "seq":
            await self.run(self.seq)
            return SEQ_STEPS
        await self.batch(CONC_WORKFLOWS)
        return CONC_WORKFLOWS * CONC_STEPS

    async def flush(self) -> None:
        """Send the spans still queued (part of the cost)."""
        if self.traces is not None:
            await self.traces.close()
            self.traces = None

    async def close(self) -> None:
        await self.flush()
        if self.metrics is not None:
            self.metrics.close()
        await self.runtime.close()


async def measure_steps(
    setting: str, measure: str, work: Path, endpoint: str
) -> tuple[float, float]:
    """steps/s, and CPU µs per step (the process's, all threads) over the timed runs."""
    runs = int(os.environ.get(_RUNS) or (SEQ_RUNS if measure == "seq" else CONC_RUNS))
    if os.environ.get(SLOWDOWN):
        stretch_timers(float(os.environ[SLOWDOWN]))
    runner = StepRunner(setting, work, endpoint)
    await runner.start()
    try:
        if measure == "seq":
            await runner.run(runner.seq)
            times, cpu = [], time.process_time()
            for _ in range(runs):
                began = time.perf_counter()
                await runner.run(runner.seq)
                times.append(time.perf_counter() - began)
            count = runs * SEQ_STEPS
            rate = SEQ_STEPS / statistics.median(times)
        else:
            await runner.batch(20)
            cpu = time.process_time()
            times = [await runner.batch(CONC_WORKFLOWS) for _ in range(runs)]
            count = runs * CONC_WORKFLOWS * CONC_STEPS
            rate = CONC_WORKFLOWS * CONC_STEPS / statistics.median(times)
        await runner.flush()
        return rate, (time.process_time() - cpu) / count * 1e6
    finally:
        await runner.close()
