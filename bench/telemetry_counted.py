"""``telemetry_bench.py --instructions``: what telemetry costs, counted by
valgrind's callgrind instead of timed (counts do not move with what else
the machine runs; times on a shared 2-core machine swing by tens of %).

* ``seq`` / ``conc``: a child running the step workflows with 1 and with 3
  timed runs; the difference over the steps between them is a step's cost.
* ``send``: ``agent-node serve --insecure-dev`` (the echo skill on SQLite)
  under callgrind, its timers stretched as the steps' are (below; not the
  batch processor's schedule), with its instrumentation off until :data:`SEND_WARMUP`
  blocking ``SendMessage`` have been answered; then it is counted (every
  thread of the node, the exporter's included, read with
  ``callgrind_control``) over :data:`SEND_MANY` more on one keep-alive
  connection (``--connections N``: N at once) and :data:`SETTLE` s after
  them. A node counted the same way with no requests gives the idle part;
  the difference over the requests is a request's cost (runs of one tree
  agree within ~1 %).

One count still moves by a few % between runs of one tree (how SQLite's
group commits and the collections fall), so each setting is counted
``--repeat`` times, interleaved, and the table gives medians and ranges.
The steps' timers (the traces' hold, the checkpoints' delay, the collector's
pause, the batch processor's schedule) are stretched :data:`SLOWDOWN` times,
so that under callgrind they come after as many steps as at full speed: not
stretched, the traces' per-step count moved by up to 10 % between runs. The
node's are stretched alike for ``send``: not stretched, a request ~70 times
slower than at full speed found each commit's hold over and set a timer of
its own, told the observers alone, and counted that against telemetry
(off 2.67 M, metrics +2.0 %, traces +5.2 % a request; stretched 2.60 M, +1.3 %,
+4.3 %, one run each).
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import telemetry_bench as tb

#: How many times slower than at full speed a step runs under callgrind (this
#: machine: 81 against 5,644 µs of CPU a sequential step with telemetry off);
#: the counted steps' timers are stretched by it.
SLOWDOWN = 70
SEND_WARMUP = 100
SEND_FEW, SEND_MANY = 0, 300
#: Seconds counted after the requests: the batch processor's schedule (5 s)
#: exports what they left, and the idle node's own work (as much in the
#: count without requests) cancels out.
SETTLE = 6.0


def _collected(text: str, what: str) -> int:
    total = [line for line in text.splitlines() if "Collected" in line]
    if not total:
        raise RuntimeError(f"{what} under valgrind:\n{text[-3000:]}")
    return int(total[-1].split()[-1].replace(",", ""))


def _stretched() -> dict[str, str]:
    """The environment that runs a counted child's timers :data:`SLOWDOWN`
    times longer (:func:`telemetry_steps.stretch_timers`)."""
    return {
        "TELEMETRY_BENCH_SLOWDOWN": str(SLOWDOWN),
        "OTEL_BSP_SCHEDULE_DELAY": str(int(5000 * SLOWDOWN)),
    }


def _counted_steps(setting: str, measure: str, runs: int, scratch: Path, endpoint: str) -> int:
    """Instructions of one child of ``setting`` with ``runs`` timed runs."""
    work = Path(tempfile.mkdtemp(prefix=f"cg-{measure}-{setting}-", dir=scratch))
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, tb.__file__, tb.STEPS, setting, measure, str(work), endpoint]
    env = {**tb.child_env(), tb._RUNS: str(runs), **_stretched()}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{setting} {measure} under valgrind:\n{done.stderr[-3000:]}")
    return _collected(done.stderr, f"{setting} {measure}")


def _send(conn: http.client.HTTPConnection, n: int) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": n,
            "method": "SendMessage",
            "params": {
                "message": {
                    "messageId": f"m-{n}",
                    "role": "ROLE_USER",
                    "parts": [{"text": f"echo {n}"}],
                }
            },
        }
    )
    conn.request(
        "POST",
        "/a2a",
        body,
        {"Content-Type": "application/json", "A2A-Version": "1.0"},
    )
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200 or b'"result"' not in data:
        raise RuntimeError(f"request {n}: HTTP {answer.status} {data[:300]!r}")


def _counted_sends(
    setting: str, requests: int, scratch: Path, endpoint: str, connections: int = 1
) -> int:
    """Instructions a node of ``setting`` ran, every thread, from the end of
    its warm-up to :data:`SETTLE` s after ``requests`` more, sent on
    ``connections`` connections at once."""
    work = Path(tempfile.mkdtemp(prefix=f"cg-send-{setting}-", dir=scratch))
    port = tb.free_port()
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    command += ["--callgrind-out-file=/dev/null"]
    serve = tb.serve_command(work, setting, endpoint, port)
    assert serve[1:3] == ["-m", "agent_node.cli.main"], serve
    command += [sys.executable, tb.__file__, tb.SERVE, *serve[3:]]
    # The node's timers stretched as the steps' are; not the batch processor's
    # schedule, whose export of what the requests left SETTLE waits for.
    env = {**tb.child_env(), "TELEMETRY_BENCH_SLOWDOWN": str(SLOWDOWN)}
    node, log = tb.launch(command, work, env)
    try:
        tb.wait_listening(node, log, timeout=600)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for n in range(SEND_WARMUP):
            _send(conn, n)
        _control(node.pid, "-i", "on")
        _send_all(port, requests, connections)
        time.sleep(SETTLE)
        counted = _control(node.pid, "-e", "Ir")
        conn.close()
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(300)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    threads = re.findall(r"^\s*Th \d+\s+([\d,]+)", counted, re.MULTILINE)
    if not threads:
        raise RuntimeError(f"{setting} send: no counts from callgrind_control:\n{counted}")
    return sum(int(found.replace(",", "")) for found in threads)


def _send_all(port: int, requests: int, connections: int) -> None:
    """``requests`` blocking sends, shared by ``connections`` client threads."""
    failed: list[BaseException] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for n in range(k, requests, connections):
                _send(conn, SEND_WARMUP + n)
        except BaseException as exc:
            failed.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]


def _control(pid: int, *options: str) -> str:
    done = subprocess.run(
        ["callgrind_control", *options, str(pid)], capture_output=True, text=True, check=True
    )
    return done.stdout


def instructions(
    measure: str,
    scratch: Path,
    endpoint: str,
    settings: Sequence[str],
    repeat: int,
    connections: int = 1,
) -> dict[str, list[float]]:
    """Instructions per step (``seq``, ``conc``) or per request (``send``)
    in each of ``settings``, ``repeat`` times, the settings interleaved."""
    if measure == "send":
        per, unit = SEND_MANY - SEND_FEW, "request"
    else:
        per = tb.SEQ_STEPS if measure == "seq" else tb.CONC_WORKFLOWS * tb.CONC_STEPS
        per, unit = 2 * per, "step"
    found: dict[str, list[float]] = {setting: [] for setting in settings}
    for turn in range(repeat):
        for setting in settings:
            if measure == "send":
                few = _counted_sends(setting, SEND_FEW, scratch, endpoint, connections)
                many = _counted_sends(setting, SEND_MANY, scratch, endpoint, connections)
            else:
                few = _counted_steps(setting, measure, 1, scratch, endpoint)
                many = _counted_steps(setting, measure, 3, scratch, endpoint)
            found[setting].append((many - few) / per)
            print(
                f"{measure:<6} {setting:<8} run {turn + 1}"
                f" {found[setting][-1]:10.0f} instructions/{unit}",
                flush=True,
            )
    return found


def counted_table(measure: str, found: dict[str, list[float]]) -> str:
    """Each setting's median count (and range), against ``off``'s median."""
    base = statistics.median(found["off"]) if "off" in found else None
    lines = []
    for setting, counts in found.items():
        median = statistics.median(counts)
        against = "" if base is None or setting == "off" else f" {(median - base) / base:+.1%}"
        spread = f"({min(counts):,.0f} to {max(counts):,.0f}, {len(counts)} runs)"
        lines.append(f"{measure:<6} {setting:<8} median {median:10,.0f}{against:>8} {spread}")
    return "\n".join(lines)
