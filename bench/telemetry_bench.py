"""What telemetry costs (issue 17): A2A ``SendMessage`` req/s and workflow
steps/s with telemetry off, metrics only, and metrics + traces.

    .venv/bin/python bench/telemetry_bench.py [--rounds 3] [--duration 5] [--warmup 1] \
        [--measures send1,send8,seq,conc] [--json FILE] [--keep-tmp]
    .venv/bin/python bench/telemetry_bench.py --paired [--measures send,seq,conc] \
        [--blocks 7] [--block 300] [--block-units N] [--settings off,metrics,traces] \
        [--tree NAME=DIR …]
    .venv/bin/python bench/telemetry_bench.py --instructions [--measures send,seq,conc] \
        [--repeat 3] [--connections 1] [--settings off,metrics,traces]
    .venv/bin/python bench/telemetry_bench.py --bytecodes [--measures seq,conc] [--units 3]

Settings (the node's ``telemetry:``):

* ``off``: ``metrics: {enabled: false}``, no traces;
* ``metrics``: the default (Prometheus metrics counted from every commit,
  claim and request; nothing scrapes them);
* ``traces``: the default plus ``traces: {endpoint: …}``: every execution,
  node visit and request becomes spans, exported by the batch processor
  (default schedule) over OTLP/HTTP to a receiver in this process that reads
  and discards them (off the measured core).

Measures, each in fresh processes:

* ``send1`` / ``send8``: ``agent-node serve --insecure-dev`` with the echo
  workflow of ``bench/a2a`` on SQLite, pinned to core 0; ``bench/a2a/load.py``
  on core 1 sends blocking ``SendMessage`` back to back on 1 / 8 keep-alive
  connections (``--warmup`` s, then ``--duration`` s measured): req/s.
* ``seq`` / ``conc``: one ``Runtime`` on SQLite in a process pinned to core
  0, the node's telemetry attached as :mod:`agent_node.node` attaches it (and start-up's
  objects frozen out of the collector's reach, as a serving node freezes them)
  (``NodeMetrics``, ``start_traces``): ``seq`` runs a 200-step workflow (1
  warm-up, 5 timed, median steps/s), ``conc`` 200 workflows of 5 steps at
  once (a warm-up batch of 20, 3 timed, median). Each execution carries a
  ``traceparent`` as an A2A task does, so traces have spans to build.

Each run also reports CPU per request (the node's, from ``load.py``) or per
step (the process's, all threads — the exporter's included — over the timed
runs and the flush of the spans they left queued): on a shared machine it
moves less than throughput does. Rounds interleave the settings (their
order rotates each round) so drift on the machine falls on all three alike.
The table gives, per measure and setting, the medians over rounds and
their differences against ``off`` (target: within 5 %).

``--paired`` measures the settings side by side instead of one after the
other (:mod:`telemetry_paired`): CPU per request and per step, steady on a
machine whose speed drifts. With ``--tree NAME=DIR`` (``DIR`` holding
another ``agent_node``, e.g. ``git worktree add DIR <commit>``), a setting
``NAME:traces`` runs that tree's code beside this one's: two versions
measured in the same blocks, each against its own ``NAME:off``.

``--instructions`` counts instead of timing (:mod:`telemetry_counted`):
``send`` (a node under valgrind's callgrind, its every thread, per
request), ``seq`` and ``conc`` (per step); it needs ``valgrind``.
``--bytecodes`` counts a step's Python bytecodes by function instead
(:mod:`telemetry_bytecodes`): closer to what the clock says than
instructions, and it says where they go.

The bench needs the ``test`` extra (OpenTelemetry, psutil), and ``taskset``
to pin (without, nothing is pinned and it says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = ("off", "metrics", "traces")
MEASURES = ("send1", "send8", "seq", "conc")
TELEMETRY = {
    "off": "telemetry: {metrics: {enabled: false}}\n",
    "metrics": "",
    "traces": "telemetry: {traces: {endpoint: '%s'}}\n",
}
SEQ_STEPS, SEQ_RUNS = 200, 5
CONC_WORKFLOWS, CONC_STEPS, CONC_RUNS = 200, 5, 3
#: Timed runs in a child (``--instructions`` sets it: counted with 1 and 3).
_RUNS = "TELEMETRY_BENCH_RUNS"
STEPS = "_steps"  # internal: telemetry_bench.py _steps SETTING MEASURE DIR ENDPOINT
#: internal: telemetry_bench.py _serve ARGS… — ``agent-node ARGS…`` with its timers
#: stretched as ``TELEMETRY_BENCH_SLOWDOWN`` says (``--instructions``' send).
SERVE = "_serve"
#: internal: telemetry_bench.py _bytecodes SETTING MEASURE DIR ENDPOINT UNITS (``--bytecodes``).
BYTECODES = "_bytecodes"


# -- the receiver ------------------------------------------------------------------


class _Discard(BaseHTTPRequestHandler):
    # Keep-alive, as collectors answer (HTTP/1.0, the default here, closed
    # each connection: every export connected anew, a cost no node pays).
    protocol_version = "HTTP/1.1"
    received = 0
    bytes = 0

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(size)
        type(self).received += 1
        type(self).bytes += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint that answers every export and keeps nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


# -- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, command: list[str], pin: bool) -> list[str]:
    return ["taskset", "-c", str(core), *command] if pin else command


def child_env(tree: str | None = None) -> dict[str, str]:
    """The environment without ``OTEL_*``: only the settings decide;
    ``tree``: a directory whose ``agent_node`` the child imports instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if tree is not None:
        # Python puts the working directory (``-m``, ``-c``) or the script's
        # own before PYTHONPATH: a child started in this checkout imported
        # this checkout's agent_node whatever the tree (both sides of an A/B
        # were one code, found in session 32). Safe paths leave them out; the
        # bench's own modules come by PYTHONPATH, after the tree.
        paths = (tree, str(HERE), env.get("PYTHONPATH"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["PYTHONSAFEPATH"] = "1"
    return env


def node_config(scratch: Path, setting: str, endpoint: str) -> Path:
    telemetry = TELEMETRY[setting] % endpoint if setting == "traces" else TELEMETRY[setting]
    path = scratch / f"node-{setting}.yaml"
    path.write_text(
        "name: telemetry-bench\n"
        "listen: {host: 127.0.0.1, port: 0}\n"
        "skills:\n"
        f"  - {{id: echo, workflow: '{HERE / 'a2a' / 'echo_workflow.py'}:wf', default: true}}\n"
        + telemetry
    )
    return path


def serve_command(work: Path, setting: str, endpoint: str, port: int) -> list[str]:
    """``agent-node serve`` of the echo skill as ``setting`` has it, on
    ``port``, its SQLite store and configuration in ``work``."""
    config = node_config(work, setting, endpoint)
    store = f"sqlite:///{work / 'bench.db'}"
    serve = ["-m", "agent_node.cli.main", "serve", "--config", str(config), "--port", str(port)]
    return [sys.executable, *serve, "--store", store, "--insecure-dev"]


def launch(
    command: list[str], work: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """``command`` started (in ``env``, else :func:`child_env`), its output
    to ``work``/node.out (also returned)."""
    log = work / "node.out"
    with log.open("wb") as out:
        node = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env or child_env()
        )
    return node, log


def wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if "listening on" in line:
                return line.split()[-1]
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited ({proc.returncode}):\n{text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("the node did not listen in time")


def send(
    setting: str, connections: int, args: argparse.Namespace, scratch: Path, endpoint: str
) -> tuple[float, float]:
    """req/s of blocking SendMessage on ``connections`` connections, and the
    node's CPU µs per request."""
    work = Path(tempfile.mkdtemp(prefix=f"send-{setting}-", dir=scratch))
    port = free_port()
    node, log = launch(pinned(0, serve_command(work, setting, endpoint, port), args.pin), work)
    try:
        url = wait_listening(node, log)
        load = [
            sys.executable,
            str(HERE / "a2a" / "load.py"),
            "--url",
            f"{url}/a2a",
            "--server-pid",
            str(node.pid),
            "--connections",
            str(connections),
            "--warmup",
            str(args.warmup),
            "--duration",
            str(args.duration),
        ]
        done = subprocess.run(
            pinned(1, load, args.pin), capture_output=True, text=True, env=child_env(), check=True
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        if row["errors_window"]:
            raise RuntimeError(f"{setting} send{connections}: errors {row['error_samples']}")
        return float(row["rps"]), float(row["server_cpu_ms_per_req"]) * 1000
    finally:
        node.terminate()
        ended(node, 15)


def ended(process: subprocess.Popen[Any], timeout: float) -> None:
    """Wait ``timeout`` s for ``process`` to end, then kill it."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def steps(
    setting: str, measure: str, args: argparse.Namespace, scratch: Path, endpoint: str
) -> tuple[float, float]:
    """steps/s of ``measure`` (seq or conc) in a fresh process, and its CPU µs per step."""
    work = Path(tempfile.mkdtemp(prefix=f"{measure}-{setting}-", dir=scratch))
    command = [sys.executable, __file__, STEPS, setting, measure, str(work), endpoint]
    done = subprocess.run(
        pinned(0, command, args.pin), capture_output=True, text=True, env=child_env()
    )
    if done.returncode != 0:
        raise RuntimeError(f"{setting} {measure} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return float(row["steps_per_s"]), float(row["cpu_us_per_step"])


# -- in the measured process: steps/s with the node's telemetry ------------------------


def _workflows() -> tuple[Any, Any, Any]:
    from pydantic import BaseModel

    from agent_node import Workflow

    class State(BaseModel):
        n: int = 0

    async def step(state: State) -> None:
        return None

    def chain(name: str, count: int) -> Any:
        wf = Workflow(name, version="1")
        wf.state(State)
        for i in range(count):
            wf.step(step, name=f"s{i}")
        return wf.compile()

    return chain("bench_seq", SEQ_STEPS), chain("bench_conc", CONC_STEPS), State


# -- the rounds ----------------------------------------------------------------------


def measure_once(
    measure: str, setting: str, args: argparse.Namespace, scratch: Path, endpoint: str
) -> tuple[float, float]:
    """(throughput, CPU µs per request or step) of one run."""
    if measure.startswith("send"):
        return send(setting, int(measure.removeprefix("send")), args, scratch, endpoint)
    return steps(setting, measure, args, scratch, endpoint)


def _cell(value: float, base: float, first: bool) -> str:
    delta = "" if first else f"{(value - base) / base * 100:+.1f} %"
    return f"{value:>8.0f} {delta:>8}"


def table(results: dict[str, dict[str, list[tuple[float, float]]]], best: bool = False) -> str:
    """Throughput, then CPU per unit, each with its difference against
    ``off``: the medians over rounds, or (``best``) the best round of each —
    on a shared machine, what others run only ever adds."""
    head = " ".join(f"{s:>17}" for s in SETTINGS)
    lines = [f"{'measure':<7} {'':<12} {head}"]
    for measure, by_setting in results.items():
        unit = "req" if measure.startswith("send") else "step"
        for index, label in ((0, f"{unit}s/s"), (1, f"CPU µs/{unit}")):
            pick = (max if index == 0 else min) if best else statistics.median
            values = {s: pick(v[index] for v in by_setting[s]) for s in SETTINGS}
            cells = [_cell(values[s], values["off"], s == "off") for s in SETTINGS]
            name = measure if index == 0 else ""
            lines.append(f"{name:<7} {label:<12} " + " ".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)


def _measures(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The measures asked for, checked against the mode's."""
    measures = [m for m in args.measures.split(",") if m]
    if args.bytecodes:  # steps only: a request's bytecodes run in a served node
        if args.measures == parser.get_default("measures"):
            measures = ["seq", "conc"]
        known = {"seq", "conc"}
    elif args.instructions or args.paired:  # sends on one connection: "send"
        measures = list(dict.fromkeys("send" if m.startswith("send") else m for m in measures))
        known = {*MEASURES, "send"}
    else:
        known = set(MEASURES)
    if unknown := set(measures) - known:
        parser.error(f"unknown measures: {sorted(unknown)}")
    return measures


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The settings asked for, checked, and ``args.trees`` from ``--tree``."""
    settings = [s for s in args.settings.split(",") if s]
    args.trees = dict(tree.partition("=")[::2] for tree in args.tree)
    if any(not name or not Path(path, "agent_node").is_dir() for name, path in args.trees.items()):
        parser.error("--tree wants NAME=DIR, DIR holding an agent_node package")
    unknown = [
        s
        for s in settings
        if s.rpartition(":")[2] not in SETTINGS
        or (":" in s and (not args.paired or s.rpartition(":")[0] not in args.trees))
    ]
    if unknown:
        parser.error(f"unknown settings: {unknown} (NAME:setting needs --paired --tree)")
    return settings


def _child() -> bool:
    """Run the internal command ``sys.argv`` names, if it names one."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "_paired_steps":
        from telemetry_paired import steps_child

        _, _, setting, measure, work, endpoint = sys.argv
        asyncio.run(steps_child(setting, measure, Path(work), endpoint))
        return True
    if command == BYTECODES:
        from telemetry_bytecodes import run_child

        run_child(sys.argv[2:])
        return True
    if command == SERVE:
        from telemetry_steps import SLOWDOWN, stretch_timers

        from agent_node.cli.main import main as agent_node

        if os.environ.get(SLOWDOWN):
            stretch_timers(float(os.environ[SLOWDOWN]))
        sys.argv = ["agent-node", *sys.argv[2:]]
        agent_node()
        return True
    if command == STEPS:
        _, _, setting, measure, work, endpoint = sys.argv
        from telemetry_steps import measure_steps

        rate, cpu = asyncio.run(measure_steps(setting, measure, Path(work), endpoint))
        print(json.dumps({"steps_per_s": rate, "cpu_us_per_step": cpu}))
        return True
    return False


def main() -> None:
    if _child():
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--measures", default=",".join(MEASURES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request (send) and step (seq, conc) under valgrind"
        " instead of timing (bench/telemetry_counted.py)",
    )
    parser.add_argument(
        "--bytecodes",
        action="store_true",
        help="count Python bytecodes per step (seq, conc), by function, instead of timing"
        " (bench/telemetry_bytecodes.py)",
    )
    parser.add_argument(
        "--units",
        type=int,
        default=3,
        help="with --bytecodes: seq runs or conc batches warmed up, then counted",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="with --instructions: counts per setting (their median is reported)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="with --instructions: connections the counted sends share",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="CPU per SendMessage with the settings' nodes side by side, sent to in turn"
        " (bench/telemetry_paired.py)",
    )
    parser.add_argument("--blocks", type=int, default=7, help="with --paired: blocks measured")
    parser.add_argument(
        "--block", type=int, default=300, help="with --paired: requests a node per block"
    )
    parser.add_argument(
        "--block-units",
        type=int,
        default=0,
        help="with --paired: seq runs or conc batches a child per block (default 5, 2)",
    )
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="with --instructions or --paired: the settings measured (off first, to compare"
        " against)",
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="with --paired: settings NAME:off, NAME:traces … run the agent_node in DIR",
    )
    args = parser.parse_args()
    measures = _measures(parser, args)
    settings = _settings(parser, args)
    args.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if not args.pin:
        print("warning: fewer than 2 cores or no taskset: nothing is pinned", file=sys.stderr)
    (HERE / "results" / "tmp").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="telemetry-", dir=HERE / "results" / "tmp"))
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        m: {s: [] for s in SETTINGS} for m in measures
    }
    try:
        if args.paired:
            from telemetry_paired import run_paired

            with receiver() as endpoint:
                run_paired(args, measures, settings, scratch, endpoint)
            return
        if args.bytecodes:
            from telemetry_bytecodes import bytecodes, bytecodes_table

            with receiver() as endpoint:
                for measure in measures:
                    found = bytecodes(measure, scratch, endpoint, settings, args.units)
                    print(bytecodes_table(measure, found), flush=True)
            return
        if args.instructions:
            from telemetry_counted import counted_table, instructions

            with receiver() as endpoint:
                for measure in measures:
                    found = instructions(
                        measure, scratch, endpoint, settings, args.repeat, args.connections
                    )
                    print(counted_table(measure, found), flush=True)
            return
        with receiver() as endpoint:
            for round_no in range(args.rounds):
                order = SETTINGS[round_no % 3 :] + SETTINGS[: round_no % 3]
                for measure in measures:
                    for setting in order:
                        rate, cpu = measure_once(measure, setting, args, scratch, endpoint)
                        results[measure][setting].append((rate, cpu))
                        print(
                            f"round {round_no + 1} {measure:<6} {setting:<8}"
                            f" {rate:9.1f}/s {cpu:8.0f} µs CPU each",
                            flush=True,
                        )
        print(
            f"\nexports received by the discarding receiver: {_Discard.received}"
            f" ({_Discard.bytes / 1e6:.1f} MB)"
        )
        print("medians over the rounds:")
        print(table(results))
        print("best round of each (the fastest, the least CPU):")
        print(table(results, best=True))
        if args.json is not None:
            args.json.write_text(json.dumps({"rounds": args.rounds, "results": results}, indent=2))
    finally:
        if not args.keep_tmp:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
