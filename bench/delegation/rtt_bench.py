"""Delegation round trip A -> B over mutual TLS, and what parked delegations cost A.

    .venv/bin/python bench/delegation/rtt_bench.py \
        [--scenarios push,watchdog,lost-push,parked,parked-burst] [--n 500] [--warmup 50] \
        [--concurrency 16] [--conc-duration 10] [--parked 1000] [--idle 5] \
        [--json bench/results/delegation.json] [--py-spy DIR] [--memprobe [N]] [--keep-tmp]

Two real ``agent-node serve`` processes per scenario, over mutual TLS with
certificates made per run by ``agent_node.security.pki`` (trust domain
``bench.test``; leaves ``a``, ``b`` and ``client``), each node on its own
SQLite file in the scenario's scratch dir:

* **B** serves skill ``work``: ``instant.py`` (one python step, then the end)
  or, for the parked scenarios, ``park.yaml`` (a wait for the event ``never``).
* **A** serves skill ``relay`` (``relay.yaml``: one delegate node ``ask`` to
  peer ``b``, then the end) with ``peers: [{name: b, url:
  https://127.0.0.1:PORT_B, identity: spiffe://bench.test/agent/b}]``.

Scenarios:

* ``push``: default settings: A asks B to push; B pushes to A's ``/a2a/push``.
* ``watchdog``: B runs with ``push: {enabled: false}`` (its card declares no
  push) and the delegate node's ``poll`` is ``--poll``. B's card still
  declares streaming, so A's watchdog first tries to follow B's task over SSE
  (SubscribeToTask) at once; when B's task is already done that is refused
  and A polls GetTask at once. This is not bound by ``poll``.
* ``lost-push``: B pushes, but A's ``public_url`` names a port nobody listens
  on, so every push is lost and only the watchdog's GetTask brings the
  result: after ``--poll`` (0.05 s), on the watchdog's next tick (1 s). This
  is the poll-bound path.
* ``parked``: B's task waits for ever, so A's delegations stay parked. A
  warm-up of ``--parked-warmup``, then ``--parked-batches`` batches of
  ``--parked`` sends to A (``returnImmediately``) over ``--park-clients``
  (1) connection, each batch done when that many more ``delegation_sent``
  rows exist in A's store; A's RSS (psutil) before and after each batch,
  1 s after it is parked: bytes per parked delegation (batch 1 is the
  figure; batch 2 is the marginal cost). After batch 1: A's and B's CPU over
  ``--idle`` s of nothing but the parked delegations, and the watchdog's
  GetTask polls per second (counted in A's ``delegations.polls``, which the
  watchdog increments once per poll of a task that is not settled, i.e.
  every poll of a parked one; B does not log GetTask).
* ``parked-burst``: the same over ``--burst-clients`` (16) connections: A
  receives the sends faster than it delegates them, so about a batch is in
  flight at once and its high-water mark is in the RSS.

Load for the round trips: a warm-up, then sends one at a time (``--n``
after ``--warmup`` for push; ``--watchdog-n``; ``--lost-push-n``, about 1 s
each), blocking ``SendMessage`` to A; then ``--concurrency`` closed-loop
clients for ``--conc-warmup`` + ``--conc-duration`` s (completed
delegations/s, A's and B's CPU per delegation). Every answer must be A's
task COMPLETED.

What is measured. "From A's send to A's resume" is read from A's event log
after the run (SQLite; an event's ``at`` is the time of the transaction that
wrote it): from the delegate node's ``node_started`` (the start node, so it is
committed with the execution; the send follows) to the ``wait_resolved``
that resumes it (committed with the node's completion). ``delegation_sent``
is committed *after* B answered SendMessage, with the park, so
``delegation_sent -> wait_resolved`` is shown too, and the client's
end-to-end latency of its blocking send to A. When B's answer is already
settled, A does not park (no ``delegation_sent``, no wait): such executions
are counted apart and their resume is the ask node's ``node_completed``.
B's log gives the legs in between: A's send until B's
``execution_started``, B's run, and B's ``execution_completed`` until A's
``wait_resolved``. Each execution's path is counted by how it resumed
(``via`` push / poll / stream), and B's push outbox (``push_configs``) shows
pushes B delivered (2xx) that did not resume anything: they reached A before
A had committed the park, found no delegation row and were ignored. A probe
(``--probe`` sends with ``returnImmediately`` straight to B) shows which
state B answers in.

Cores (2 in all): A on core 0; B, this process (the load client) and py-spy
on core 1 (``taskset``). The client is idle while a sequential send is in
flight, so A has a core of its own; what B and the client cost shows in B's
legs.

Diagnostics (not needed for the figures, and they perturb them):
``--py-spy DIR`` records A and B with py-spy (``--nonblocking``, per thread)
during the concurrent window of ``--py-spy-scenarios`` (push) and prints
where their CPU goes; ``--memprobe [N]`` runs A of the parked scenarios as
``memprobe.py`` (the same CLI, plus RSS after ``gc.collect()`` and
``malloc_trim``, live blocks and objects per type; N: tracemalloc frames).

Needs the project's venv (psutil; py-spy for ``--py-spy``) and ``taskset``.
Scratch dirs go under ``bench/results/tmp/`` and are deleted unless
``--keep-tmp``. Exit status 1 when a run failed or an answer was wrong (not
when a target is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH / "a2a"))

import mtls  # noqa: E402  (bench/a2a: the client's TLS context)
from load import RawConnection  # noqa: E402  (bench/a2a: the cheap HTTP/1.1 client)
from send_bench import (  # noqa: E402
    fmt,
    free_port,
    pinned,
    print_grid,
    stop,
    tail,
    wait_ready,
)
from send_bench import versions as a2a_versions  # noqa: E402

VENV_BIN = Path(sys.executable).parent
A_CORE, B_CORE, CLIENT_CORE = 0, 1, 1
TRUST_DOMAIN = "bench.test"
B_IDENTITY = f"spiffe://{TRUST_DOMAIN}/agent/b"
COMPLETED = "TASK_STATE_COMPLETED"
SCENARIOS = ("push", "watchdog", "lost-push", "parked", "parked-burst")
ROUND_TRIPS = ("push", "watchdog", "lost-push")

#: Every node process started, so that an interrupted run stops them all.
CHILDREN: list[subprocess.Popen[bytes]] = []
#: Seconds one SendMessage may take before it counts as an error (set by --request-timeout).
REQUEST_TIMEOUT = 60.0
#: Errors in a row after which a load phase gives up.
MAX_ERRORS_IN_A_ROW = 5

#: The issue's targets.
PUSH_P50_MS, PUSH_P99_MS = 15.0, 50.0
PARKED_BYTES = 2048  # "under 2 KB"


# -- processes -------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    port: int
    db: Path
    proc: subprocess.Popen[bytes]
    log: Path
    #: memprobe.py's output (A run with --memprobe), else None.
    probe_out: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """User + sys CPU seconds of the node (and any children)."""
        p = psutil.Process(self.proc.pid)
        t = p.cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def thread_cpu(self) -> tuple[float, float]:
        """CPU seconds of the main (event-loop) thread and of all the others."""
        main = other = 0.0
        for t in psutil.Process(self.proc.pid).threads():
            if t.id == self.proc.pid:
                main += t.user_time + t.system_time
            else:
                other += t.user_time + t.system_time
        return main, other

    async def probe(self) -> dict[str, Any] | None:
        """memprobe.py's reading (SIGUSR1), or None when not run with it."""
        if self.probe_out is None:
            return None
        lines = self.probe_out.read_text().splitlines() if self.probe_out.exists() else []
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            now = self.probe_out.read_text().splitlines() if self.probe_out.exists() else []
            if len(now) > len(lines):
                return dict(json.loads(now[-1]))
        raise RuntimeError(f"{self.name}: no memory probe after 120 s")


def make_certs(folder: Path) -> Path:
    from agent_node.security import pki

    folder.mkdir(parents=True, exist_ok=True)
    pki.init_ca(folder, trust_domain=TRUST_DOMAIN)
    for name in ("a", "b", mtls.CLIENT):
        pki.issue(folder, name)
    return folder


def write_config(
    scratch: Path,
    name: str,
    port: int,
    skill: str,
    push: dict[str, Any],
    peers: list[dict[str, str]] | None = None,
    public_url: str | None = None,
) -> Path:
    config: dict[str, Any] = {
        "name": name,
        "listen": {"host": "127.0.0.1", "port": port},
        "store": f"sqlite:///{scratch / (name + '.db')}",
        "skills": [{"id": skill.split("=")[0], "workflow": skill.split("=")[1], "default": True}],
        "push": push,
    }
    if peers:
        config["peers"] = peers
    if public_url:
        config["public_url"] = public_url
    path = scratch / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_node(
    name: str,
    config: Path,
    port: int,
    core: int,
    certs: Path,
    scratch: Path,
    pin: bool,
    memprobe: int | None = None,
) -> Node:
    """``agent-node serve``; with ``memprobe`` (tracemalloc frames, 0: none) the
    same CLI run by memprobe.py, which reports its memory on SIGUSR1."""
    log = scratch / f"{name}.log"
    env = dict(os.environ)
    probe_out = None
    entry = [str(VENV_BIN / "agent-node")]
    if memprobe is not None:
        probe_out = scratch / f"{name}-memprobe.jsonl"
        env.update(MEMPROBE_OUT=str(probe_out), MEMPROBE_TRACE=str(memprobe))
        entry = [sys.executable, str(HERE / "memprobe.py")]
    command = [
        *entry,
        "serve",
        "--config",
        str(config),
        "--cert-dir",
        str(certs),
        "--identity",
        name,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(core, command, pin), cwd=scratch, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    CHILDREN.append(proc)
    node = Node(name, port, scratch / f"{name}.db", proc, log, probe_out)
    try:
        wait_ready(proc, port, mtls.client_context(certs))
    except RuntimeError as exc:
        stop(proc)
        raise RuntimeError(f"{name}: {exc}\n{tail(log)}") from None
    return node


def start_pair(
    scenario: str, args: argparse.Namespace, scratch: Path, certs: Path
) -> tuple[Node, Node]:
    scratch.mkdir(parents=True)
    port_a, port_b = free_port(), free_port()
    b_push: dict[str, Any]
    if scenario == "parked":
        b_skill, b_push = f"work={HERE / 'park.yaml'}", {"allow": ["127.0.0.0/8"]}
        poll = 5.0  # the delegate node's default
    elif scenario == "watchdog":
        b_skill, b_push = f"work={HERE / 'instant.py'}:wf", {"enabled": False}
        poll = args.poll
    elif scenario == "lost-push":  # B pushes, to where A said: a port nobody listens on
        b_skill, b_push = f"work={HERE / 'instant.py'}:wf", {"allow": ["127.0.0.0/8"]}
        poll = args.poll
    else:
        b_skill, b_push = f"work={HERE / 'instant.py'}:wf", {"allow": ["127.0.0.0/8"]}
        poll = 5.0
    relay = yaml.safe_load((HERE / "relay.yaml").read_text())
    relay["nodes"]["ask"]["poll"] = poll
    relay_path = scratch / "relay.yaml"
    relay_path.write_text(yaml.safe_dump(relay, sort_keys=False))
    b_config = write_config(scratch, "b", port_b, b_skill, b_push)
    peers = [{"name": "b", "url": f"https://127.0.0.1:{port_b}", "identity": B_IDENTITY}]
    dead = f"https://127.0.0.1:{free_port()}" if scenario == "lost-push" else None
    a_config = write_config(scratch, "a", port_a, f"relay={relay_path}", {}, peers, dead)
    b = start_node("b", b_config, port_b, B_CORE, certs, scratch, args.pin)
    try:
        memprobe = args.memprobe if scenario == "parked" else None
        a = start_node("a", a_config, port_a, A_CORE, certs, scratch, args.pin, memprobe)
    except BaseException:
        stop(b.proc)
        raise
    return a, b


# -- the client ------------------------------------------------------------------------


class BadAnswer(Exception):
    pass


@dataclass
class Sends:
    """What the client saw: per measured send, (task id, latency s, end time)."""

    tag: str
    seq: int = 0
    errors: list[str] = field(default_factory=list)

    def body(self, *, blocking: bool, skill: str | None = None) -> tuple[bytes, int]:
        self.seq += 1
        message: dict[str, Any] = {
            "messageId": f"m-{self.tag}-{self.seq}",
            "role": "ROLE_USER",
            "parts": [{"data": {"n": self.seq}}],
        }
        if skill:
            message["metadata"] = {"skill": skill}
        params: dict[str, Any] = {"message": message}
        if not blocking:
            params["configuration"] = {"returnImmediately": True}
        rpc = {"jsonrpc": "2.0", "id": self.seq, "method": "SendMessage", "params": params}
        return json.dumps(rpc, separators=(",", ":")).encode(), self.seq


async def send_one(
    conn: RawConnection, sends: Sends, *, blocking: bool = True
) -> tuple[str, str, float]:
    """One SendMessage: (task id, task state, latency s); raises BadAnswer."""
    body, rpc_id = sends.body(blocking=blocking)
    started = time.perf_counter()
    try:
        status, payload = await asyncio.wait_for(conn.post(body), REQUEST_TIMEOUT)
    except TimeoutError:
        raise BadAnswer(f"no answer in {REQUEST_TIMEOUT:g} s") from None
    latency = time.perf_counter() - started
    if status != 200:
        raise BadAnswer(f"HTTP {status}: {payload[:300]!r}")
    answer = json.loads(payload)
    if answer.get("id") != rpc_id or not isinstance(answer.get("result"), dict):
        raise BadAnswer(f"not the JSON-RPC result of {rpc_id}: {payload[:300]!r}")
    task = answer["result"].get("task") or {}
    state = (task.get("status") or {}).get("state", "")
    if blocking and state != COMPLETED:
        raise BadAnswer(f"task state {state!r}: {payload[:400]!r}")
    return str(task.get("id", "")), state, latency


async def open_conn(port: int, certs: Path) -> RawConnection:
    conn = RawConnection("127.0.0.1", port, "/a2a", mtls.client_context(certs))
    await conn.open()
    return conn


async def sequential(
    node: Node, certs: Path, warmup: int, n: int, tag: str
) -> tuple[list[tuple[str, float]], dict[str, float], list[str]]:
    """``warmup`` then ``n`` blocking sends one at a time: the measured (id, latency)s,
    the window's duration and CPU of A, and the errors."""
    conn = await open_conn(node.port, certs)
    sends = Sends(tag)
    measured: list[tuple[str, float]] = []
    errors: list[str] = []
    window: dict[str, float] = {}
    in_a_row = 0
    try:
        for i in range(warmup + n):
            if i == warmup:
                window = {"t": time.perf_counter(), "a_cpu": node.cpu()}
            try:
                task_id, _, latency = await send_one(conn, sends)
                in_a_row = 0
            except (OSError, asyncio.IncompleteReadError, ValueError, BadAnswer) as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                conn.close()
                in_a_row += 1
                if in_a_row >= MAX_ERRORS_IN_A_ROW:
                    raise RuntimeError(f"{in_a_row} errors in a row: {errors[-3:]}") from None
                continue
            if i >= warmup:
                measured.append((task_id, latency))
        window = {
            "seconds": time.perf_counter() - window["t"],
            "a_cpu_s": node.cpu() - window["a_cpu"],
        }
    finally:
        await conn.aclose()
    return measured, window, errors


async def concurrent(
    a: Node,
    b: Node,
    certs: Path,
    clients: int,
    warmup: float,
    duration: float,
    tag: str,
    on_window: Any = None,
) -> dict[str, Any]:
    """``clients`` closed loops of blocking sends: warm-up, then a measured window
    (``on_window()`` is called as it opens: the profiler starts there)."""
    conns = [await open_conn(a.port, certs) for _ in range(clients)]
    state = {"window": False, "done": False}
    measured: list[tuple[str, float]] = []
    errors: list[str] = []
    sends = Sends(tag)

    async def loop(conn: RawConnection) -> None:
        in_a_row = 0
        while not state["done"] and in_a_row < MAX_ERRORS_IN_A_ROW:
            try:
                task_id, _, latency = await send_one(conn, sends)
                in_a_row = 0
            except (OSError, asyncio.IncompleteReadError, ValueError, BadAnswer) as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                conn.close()
                in_a_row += 1
                await asyncio.sleep(0.05)
                continue
            if state["window"] and not state["done"]:
                measured.append((task_id, latency))

    tasks = [asyncio.create_task(loop(c)) for c in conns]
    await asyncio.sleep(warmup)
    if on_window is not None:
        on_window()
    t0, a0, b0 = time.perf_counter(), a.cpu(), b.cpu()
    threads0 = {n.name: n.thread_cpu() for n in (a, b)}
    state["window"] = True
    await asyncio.sleep(duration)
    state["done"] = True
    seconds, a_cpu, b_cpu = time.perf_counter() - t0, a.cpu() - a0, b.cpu() - b0
    threads = {n.name: n.thread_cpu() for n in (a, b)}
    await asyncio.wait(tasks, timeout=60)
    for conn in conns:
        await conn.aclose()
    done = len(measured)
    return {
        "clients": clients,
        "seconds": seconds,
        "completed": done,
        "delegations_per_s": done / seconds if seconds else None,
        "client_p50_ms": pct([x[1] * 1e3 for x in measured], 50),
        "client_p99_ms": pct([x[1] * 1e3 for x in measured], 99),
        "a_cpu_pct": 100 * a_cpu / seconds,
        "b_cpu_pct": 100 * b_cpu / seconds,
        "a_cpu_ms_per_delegation": 1e3 * a_cpu / done if done else None,
        "b_cpu_ms_per_delegation": 1e3 * b_cpu / done if done else None,
        **{
            f"{name}_{kind}_cpu_ms_per_delegation": (
                1e3 * (threads[name][i] - threads0[name][i]) / done if done else None
            )
            for name in ("a", "b")
            for i, kind in enumerate(("main_thread", "other_threads"))
        },
        "errors": len(errors),
        "error_samples": errors[:5],
        "ids": [x[0] for x in measured],
    }


async def probe_b(b: Node, certs: Path, n: int) -> dict[str, int]:
    """What state B answers a ``returnImmediately`` send in (from the client, directly)."""
    conn = await open_conn(b.port, certs)
    counts: dict[str, int] = {}
    sends = Sends("probe")
    try:
        for _ in range(n):
            _, st, _ = await send_one(conn, sends, blocking=False)
            counts[st] = counts.get(st, 0) + 1
    finally:
        await conn.aclose()
    return counts


# -- the event logs --------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile, linear between closest ranks (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": pct(values, 50),
        "p90_ms": pct(values, 90),
        "p99_ms": pct(values, 99),
        "max_ms": max(values) if values else None,
        "mean_ms": sum(values) / len(values) if values else None,
    }


def read_events(db: Path) -> dict[str, list[tuple[str, str | None, float, Any]]]:
    """Every execution's events, in order: (kind, node, at, data)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            # the log of schema 10: row id = execution number << 32 | seq
            "SELECT x.id, e.kind, e.node, e.at, e.data FROM events e"
            " JOIN executions x ON e.id >> 32 = x.num ORDER BY x.id, e.id"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[tuple[str, str | None, float, Any]]] = {}
    for execution_id, kind, node, at, data in rows:
        out.setdefault(execution_id, []).append(
            (kind, node, float(at), json.loads(data) if data else None)
        )
    return out


def first(
    events: list[tuple[str, str | None, float, Any]], kind: str, node: str | None = None
) -> tuple[str, str | None, float, Any] | None:
    return next((e for e in events if e[0] == kind and (node is None or e[1] == node)), None)


def read_pushes(db: Path) -> dict[str, tuple[int, str | None]]:
    """B's push outbox: per task, (settled, last_error); settled with no error:
    B's push was answered 2xx (delivered, whatever A then did with it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT task_id, settled, last_error FROM push_configs").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return {task_id: (int(settled), error) for task_id, settled, error in rows}


Event = tuple[str, str | None, float, Any]


def b_legs(
    bev: list[Event] | None,
    legs: dict[str, list[float]],
    t0: float,
    sent: Event | None,
    resolved: Event | None,
) -> bool:
    """Add the legs through B's log (A's send at ``t0``); whether B's task
    completed before A committed the park."""
    if not bev:
        return False
    b0, b1 = first(bev, "execution_started"), first(bev, "execution_completed")
    if b0 is not None:
        legs["a_send_to_b_started"].append(b0[2] - t0)
    if b0 is not None and b1 is not None:
        legs["b_run"].append(b1[2] - b0[2])
    if b1 is not None and resolved is not None:
        legs["b_completed_to_a_resolved"].append(resolved[2] - b1[2])
    if b1 is not None and sent is not None:
        legs["b_completed_to_a_sent"].append(sent[2] - b1[2])
        return sent[2] > b1[2]
    return False


def analyse(a_db: Path, b_db: Path, ids: list[str]) -> dict[str, Any]:
    """The round trips of A's executions ``ids``, from both event logs (ms)."""
    a_events, b_events = read_events(a_db), read_events(b_db)
    pushes = read_pushes(b_db)
    by_via: dict[str, list[float]] = {}
    #: Resumed by the watchdog although B's push had been delivered: it came
    #: before A committed the park, found no delegation row and was ignored.
    push_ignored = 0
    push_ignored_ms: list[float] = []
    paths: dict[str, int] = {}
    legs: dict[str, list[float]] = {
        k: []
        for k in (
            "send_to_resume",  # node_started(ask) -> wait_resolved, or node_completed at once
            "send_to_resume_parked",  # the same, parked executions only
            "send_to_resume_at_once",
            "sent_to_resolved",  # delegation_sent -> wait_resolved
            "send_to_sent",  # node_started(ask) -> delegation_sent: SendMessage + park commit
            "resume_to_node_completed",  # wait_resolved -> node_completed(ask)
            "a_execution",  # A's execution_started -> execution_completed
            "a_send_to_b_started",  # node_started(ask) -> B's execution_started
            "b_run",  # B's execution_started -> execution_completed
            "b_completed_to_a_sent",  # B's execution_completed -> A's delegation_sent
            "b_completed_to_a_resolved",  # B's execution_completed -> A's wait_resolved
        )
    }
    retries = 0
    push_after_sent_late = 0  # B completed before A committed the park
    for execution_id in ids:
        ev = a_events.get(execution_id)
        if not ev:
            paths["missing"] = paths.get("missing", 0) + 1
            continue
        started = first(ev, "node_started", "ask")
        sent = first(ev, "delegation_sent", "ask")
        resolved = first(ev, "wait_resolved", "ask")
        done = first(ev, "node_completed", "ask")
        x0, x1 = first(ev, "execution_started"), first(ev, "execution_completed")
        retries += sum(1 for e in ev if e[0] == "node_failed" and e[1] == "ask")
        if started is None or done is None:
            paths["unfinished"] = paths.get("unfinished", 0) + 1
            continue
        t0 = started[2]
        if resolved is not None:
            via = ((resolved[3] or {}).get("payload") or {}).get("via", "?")
            path = f"parked, resumed by {via}"
            resume = resolved[2]
            by_via.setdefault(via, []).append(resume - t0)
            legs["send_to_resume_parked"].append(resume - t0)
            legs["resume_to_node_completed"].append(done[2] - resume)
        else:
            path, resume = "answered settled (no wait)", done[2]
            legs["send_to_resume_at_once"].append(resume - t0)
        paths[path] = paths.get(path, 0) + 1
        legs["send_to_resume"].append(resume - t0)
        if sent is not None:
            legs["send_to_sent"].append(sent[2] - t0)
            if resolved is not None:
                legs["sent_to_resolved"].append(resolved[2] - sent[2])
        if x0 is not None and x1 is not None:
            legs["a_execution"].append(x1[2] - x0[2])
        b_task = (sent[3] or {}).get("task_id") if sent else None
        if b_task is None:
            b_task = (((done[3] or {}).get("output") or {}).get("task_id")) if done else None
        delivered = pushes.get(b_task or "")
        if resolved is not None and via != "push" and delivered == (1, None):
            push_ignored += 1
            push_ignored_ms.append(resolved[2] - t0)
        if b_legs(b_events.get(b_task or ""), legs, t0, sent, resolved):
            push_after_sent_late += 1
    return {
        "executions": len(ids),
        "paths": paths,
        "retries": retries,
        "b_done_before_a_parked": push_after_sent_late,
        "push_delivered_but_ignored": push_ignored,
        "push_delivered_but_ignored_rtt_ms": [round(v * 1e3, 1) for v in push_ignored_ms],
        "legs_ms": {k: summary([v * 1e3 for v in vals]) for k, vals in legs.items()},
        "send_to_resume_by_via_ms": {
            via: summary([v * 1e3 for v in vals]) for via, vals in by_via.items()
        },
    }


def count_rows(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    finally:
        conn.close()


# -- profiles --------------------------------------------------------------------------


def py_spy(node: Node, seconds: float, out: Path, args: argparse.Namespace) -> Any:
    """``py-spy record`` of ``node`` for ``seconds`` (raw collapsed stacks, per thread,
    not pausing the target), pinned to the client's core."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(VENV_BIN / "py-spy"),
        "record",
        "--pid",
        str(node.proc.pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(args.py_spy_rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--threads",
        *([] if args.py_spy_blocking else ["--nonblocking"]),
    ]
    return subprocess.Popen(
        pinned(CLIENT_CORE, command, args.pin),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


#: Where a leaf frame's file belongs (first match), for the self-time split.
GROUPS = (
    ("TLS (ssl, sslproto)", ("/ssl.py", "/sslproto.py")),
    ("SQLite store", ("agent_node/store/", "sqlite3/")),
    ("outgoing HTTP (httpx, httpcore, h11, anyio)", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("serving (uvicorn, starlette, httptools)", ("uvicorn/", "starlette/", "httptools")),
    ("pydantic", ("pydantic",)),
    ("json", ("json/",)),
    ("asyncio", ("asyncio/", "selectors.py")),
    ("agent_node (other)", ("agent_node/",)),
)


#: Frames on (nearly) every stack of a thread: left out of the inclusive ranking.
TRUNK = (
    "<module> (",
    "main (agent_node/cli/main.py)",
    "(click/core.py)",
    "handle_errors.<locals>.wrapper (",
    "run_async (agent_node/cli/common.py)",
    "serve (agent_node/cli/serve.py)",
    "run (asyncio/runners.py)",
    "Runner.run (asyncio/runners.py)",
    "BaseEventLoop.run_until_complete (",
    "BaseEventLoop.run_forever (",
    "BaseEventLoop._run_once (",
    "Handle._run (asyncio/events.py)",
    "Thread._bootstrap",
    "Thread.run (threading.py)",
    "memprobe.py)",
)


def _frame(raw: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file path from the package)``."""
    name, _, where = raw.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def _thread_class(root: str) -> str:
    name = root.split(": ", 1)[-1] if root.startswith("thread (") else "?"
    if name.startswith("sqlite checkpoints"):
        return "sqlite checkpoints"
    if name.startswith("sqlite:"):
        return "sqlite writer"
    return name if name == "MainThread" else "other threads"


@dataclass
class _Tally:
    samples: int = 0
    leaf: dict[str, int] = field(default_factory=dict)
    inclusive: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)

    def add(self, frames: list[str], leaf_raw: str, count: int) -> None:
        self.samples += count
        self.leaf[frames[-1]] = self.leaf.get(frames[-1], 0) + count
        for f in set(frames):
            if not any(t in f for t in TRUNK):
                self.inclusive[f] = self.inclusive.get(f, 0) + count
        group = next((g for g, keys in GROUPS if any(k in leaf_raw for k in keys)), "other")
        self.groups[group] = self.groups.get(group, 0) + count

    def report(self, top: int) -> dict[str, Any]:
        def share(d: dict[str, int], n: int) -> list[tuple[str, float]]:
            ranked = sorted(d.items(), key=lambda x: -x[1])[:n]
            return [(k, round(100 * v / max(self.samples, 1), 1)) for k, v in ranked]

        return {
            "samples": self.samples,
            "self_groups_pct": dict(share(self.groups, 20)),
            "self_top_pct": share(self.leaf, top),
            "inclusive_top_pct": share(self.inclusive, top + 10),
        }


def top_frames(raw: Path, top: int = 25) -> dict[str, Any]:
    """A py-spy raw profile as numbers, per thread (the event loop's
    ``MainThread``, the SQLite writer, its checkpointer, others): samples,
    the self time by group of the leaf frame's file, the top leaf functions,
    and the top functions inclusive (the trunk every stack shares left out);
    each as % of that thread's samples. py-spy samples threads it sees as
    running: a thread in a blocking C call (an fsync, SQLite's own work)
    counts, one waiting in epoll or on a lock mostly does not."""
    if not raw.exists():
        return {"error": f"no profile written ({raw.name})"}
    tallies: dict[str, _Tally] = {}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        parts = stack.split(";")
        tally = tallies.setdefault(_thread_class(parts[0]), _Tally())
        frames = [_frame(f) for f in parts[1:]] or ["(no frame)"]
        tally.add(frames, parts[-1], int(count_text))
    total = sum(t.samples for t in tallies.values())
    return {
        "samples": total,
        "threads_pct": {
            k: round(100 * t.samples / max(total, 1), 1)
            for k, t in sorted(tallies.items(), key=lambda x: -x[1].samples)
        },
        "by_thread": {k: t.report(top) for k, t in tallies.items()},
        "file": str(raw),
    }


# -- scenarios -------------------------------------------------------------------------


async def round_trip(
    scenario: str, args: argparse.Namespace, scratch: Path, certs: Path
) -> dict[str, Any]:
    a, b = start_pair(scenario, args, scratch, certs)
    row: dict[str, Any] = {"scenario": scenario}
    n, warmup = {
        "push": (args.n, args.warmup),
        "watchdog": (args.watchdog_n, args.watchdog_warmup),
        "lost-push": (args.lost_push_n, args.lost_push_warmup),
    }[scenario]
    try:
        if args.probe:
            row["b_answers_return_immediately"] = await probe_b(b, certs, args.probe)
        b0 = b.cpu()
        measured, window, errors = await sequential(a, certs, warmup, n, scenario)
        window["b_cpu_s"] = b.cpu() - b0  # warm-up included: for information
        row["sequential"] = {
            "warmup": warmup,
            "n": n,
            "completed": len(measured),
            "seconds": window["seconds"],
            "a_cpu_ms_per_delegation": 1e3 * window["a_cpu_s"] / max(len(measured), 1),
            "client": summary([x[1] * 1e3 for x in measured]),
            "errors": len(errors),
            "error_samples": errors[:5],
        }
        seq_ids = [x[0] for x in measured]
        conc = None
        spies: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        profile = args.py_spy is not None and scenario in args.py_spy_scenarios

        def start_spies() -> None:
            for node in (a, b):
                out = args.py_spy / f"{scenario}-{node.name}.raw"
                spies.append((node.name, out, py_spy(node, args.conc_duration, out, args)))

        if args.concurrency > 0 and args.conc_duration > 0:
            conc = await concurrent(
                a,
                b,
                certs,
                args.concurrency,
                args.conc_warmup,
                args.conc_duration,
                scenario,
                on_window=start_spies if profile else None,
            )
        for name, out, spy in spies:
            spy.wait(timeout=args.conc_duration + 60)
            row.setdefault("profile", {})[name] = top_frames(out)
        row["a_rss_bytes"], row["b_rss_bytes"] = a.rss(), b.rss()
    finally:
        row["a_exit"], row["b_exit"] = stop(a.proc), stop(b.proc)
    row["sequential"].update(analyse(a.db, b.db, seq_ids))
    if conc is not None:
        ids = conc.pop("ids")
        conc.update(analyse(a.db, b.db, ids))
        row["concurrent"] = conc
    if errors or (conc and conc["errors"]):
        row["a_log_tail"], row["b_log_tail"] = tail(a.log), tail(b.log)
    return row


async def park_batch(a: Node, certs: Path, count: int, clients: int, expect: int) -> float:
    """Send ``count`` non-blocking tasks to A over ``clients`` connections, then wait
    until A has ``expect`` delegation_sent rows; returns the seconds it took."""
    t0 = time.perf_counter()
    conns = [await open_conn(a.port, certs) for _ in range(clients)]
    sends = Sends(f"park{expect}")
    left = [count]
    errors: list[str] = []

    async def loop(conn: RawConnection) -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                await send_one(conn, sends, blocking=False)
            except (OSError, asyncio.IncompleteReadError, ValueError, BadAnswer) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()

    await asyncio.gather(*(loop(c) for c in conns))
    for conn in conns:
        await conn.aclose()
    if errors:
        raise RuntimeError(f"{len(errors)} sends to A failed: {errors[:3]}")
    deadline = time.monotonic() + 300
    sql = "SELECT count(*) FROM events WHERE kind = 'delegation_sent'"
    while count_rows(a.db, sql) < expect:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {expect} delegation_sent rows after 300 s")
        if a.proc.poll() is not None:
            raise RuntimeError(f"A exited with status {a.proc.returncode}")
        await asyncio.sleep(0.1)
    return time.perf_counter() - t0


def probe_diff(before: dict[str, Any] | None, after: dict[str, Any] | None, n: int) -> Any:
    """What memprobe.py saw grow between two probes, per parked delegation."""
    if before is None or after is None:
        return None
    per = {
        f"{k}_per_parked": (after[k] - before[k]) / n
        for k in ("rss_after_gc", "rss_after_trim", "blocks", "gc_objects")
    }
    if "traced_bytes" in after and "traced_bytes" in before:
        per["traced_bytes_per_parked"] = (after["traced_bytes"] - before["traced_bytes"]) / n
    grown = {
        t: (after["types"].get(t, 0) - before["types"].get(t, 0)) / n
        for t in set(after["types"]) | set(before["types"])
    }
    per["types_per_parked"] = dict(
        sorted(((t, round(v, 2)) for t, v in grown.items() if v), key=lambda x: -abs(x[1]))[:15]
    )
    if "top_lines" in after:
        per["top_lines_after"] = after["top_lines"][:12]
    return per


async def parked(
    scenario: str, args: argparse.Namespace, scratch: Path, certs: Path
) -> dict[str, Any]:
    a, b = start_pair("parked", args, scratch, certs)
    clients = args.burst_clients if scenario == "parked-burst" else args.park_clients
    row: dict[str, Any] = {
        "scenario": scenario,
        "parked": args.parked,
        "park_clients": clients,
        "memprobe": args.memprobe,
    }
    polls_sql = "SELECT sum(polls) FROM delegations"
    failed_sql = "SELECT count(*) FROM events WHERE kind = 'node_failed'"
    try:
        # Nothing parked yet: A's and B's own idle cost, the baseline of the idle below.
        await asyncio.sleep(args.settle)
        empty = await idle_window(a, b, args.idle, polls_sql)
        row["idle_empty_a_cpu_pct"] = empty["idle_a_cpu_pct"]
        row["idle_empty_b_cpu_pct"] = empty["idle_b_cpu_pct"]
        warm = args.parked_warmup
        row["warmup_parked"] = warm
        row["warmup_s"] = await park_batch(a, certs, warm, 4, warm)
        await asyncio.sleep(args.settle)
        rss_prev, b_prev = a.rss(), b.rss()
        probe_prev = await a.probe()
        row["a_rss_before_bytes"] = rss_prev
        batches: list[dict[str, Any]] = []
        total = warm
        for k in range(args.parked_batches):
            total += args.parked
            failed0 = count_rows(a.db, failed_sql)
            seconds = await park_batch(a, certs, args.parked, clients, total)
            await asyncio.sleep(args.settle)
            rss, b_rss = a.rss(), b.rss()
            probe = await a.probe()
            batch = {
                "parked_total": total,
                "park_s": seconds,
                "a_rss_bytes": rss,
                "rss_bytes_per_parked": (rss - rss_prev) / args.parked,
                "b_rss_bytes_per_parked": (b_rss - b_prev) / args.parked,
                # B refused A's sends (its per-caller cap) and the node retried them:
                "send_retries": count_rows(a.db, failed_sql) - failed0,
            }
            if probe is not None:
                batch["memprobe"] = probe_diff(probe_prev, probe, args.parked)
                batch["memprobe"]["raw"] = {
                    k: probe[k]
                    for k in ("rss", "rss_after_gc", "rss_after_trim", "blocks", "gc_objects")
                }
            batches.append(batch)
            rss_prev, b_prev, probe_prev = rss, b_rss, probe
            if k == 0:
                row.update(await idle_window(a, b, args.idle, polls_sql))
        row["batches"] = batches
        first = batches[0]
        row["a_rss_after_bytes"] = first["a_rss_bytes"]
        row["rss_bytes_per_parked"] = first["rss_bytes_per_parked"]
        row["b_rss_bytes_per_parked"] = first["b_rss_bytes_per_parked"]
        row["park_s"] = first["park_s"]
        row["send_retries"] = first["send_retries"]
        row["settled_answers"] = count_rows(
            a.db, "SELECT count(*) FROM events WHERE kind = 'node_completed' AND node = 'ask'"
        )
        row["waits_in_db"] = count_rows(
            a.db, "SELECT count(*) FROM waits WHERE kind = 'delegation'"
        )
    finally:
        row["a_exit"], row["b_exit"] = stop(a.proc), stop(b.proc)
    if row.get("send_retries"):
        row["a_log_tail"], row["b_log_tail"] = tail(a.log, 5), tail(b.log, 5)
    return row


async def idle_window(a: Node, b: Node, seconds: float, polls_sql: str) -> dict[str, Any]:
    """Nothing sent for ``seconds``: A's and B's CPU, and the watchdog's GetTask polls."""
    p0 = count_rows(a.db, polls_sql)
    t0, a0, b0 = time.perf_counter(), a.cpu(), b.cpu()
    await asyncio.sleep(seconds)
    took = time.perf_counter() - t0
    a_cpu, b_cpu = a.cpu() - a0, b.cpu() - b0
    polls = count_rows(a.db, polls_sql) - p0
    return {
        "idle_s": took,
        "idle_a_cpu_pct": 100 * a_cpu / took,
        "idle_b_cpu_pct": 100 * b_cpu / took,
        "idle_getTask_polls_per_s": polls / took,
        "idle_a_cpu_ms_per_poll": 1e3 * a_cpu / polls if polls else None,
        "idle_b_cpu_ms_per_poll": 1e3 * b_cpu / polls if polls else None,
        "parked_in_db": count_rows(a.db, "SELECT count(*) FROM delegations"),
        "polled_at_least_once": count_rows(
            a.db, "SELECT count(*) FROM delegations WHERE polls > 0"
        ),
    }


# -- report ----------------------------------------------------------------------------


def print_round_trips(rows: list[dict[str, Any]]) -> None:
    trips = [r for r in rows if r["scenario"] in ROUND_TRIPS and "sequential" in r]
    if not trips:
        return
    print("\nRound trip A -> B -> A, sequential sends (ms; from A's and B's event logs):")
    header = ["scenario", "leg", "n", "p50", "p90", "p99", "max"]
    table = [header]
    labels = [
        ("send_to_resume", "A send -> A resume (node_started -> wait_resolved)"),
        ("sent_to_resolved", "A delegation_sent -> wait_resolved"),
        ("send_to_sent", "A send -> delegation_sent (B answered, park committed)"),
        ("a_send_to_b_started", "A send -> B execution_started"),
        ("b_run", "B execution_started -> execution_completed"),
        ("b_completed_to_a_resolved", "B execution_completed -> A wait_resolved"),
        ("resume_to_node_completed", "A wait_resolved -> node_completed"),
        ("a_execution", "A execution_started -> execution_completed"),
    ]
    for r in trips:
        legs = r["sequential"]["legs_ms"]
        client = r["sequential"]["client"]
        for key, label in [*labels, ("client", "client: blocking SendMessage to A")]:
            s = client if key == "client" else legs[key]
            if not s["n"]:
                continue
            table.append(
                [
                    r["scenario"],
                    label,
                    str(s["n"]),
                    fmt(s["p50_ms"], ".2f"),
                    fmt(s["p90_ms"], ".2f"),
                    fmt(s["p99_ms"], ".2f"),
                    fmt(s["max_ms"], ".2f"),
                ]
            )
    print_grid(table, left={0, 1})
    for r in trips:
        seq = r["sequential"]
        print(
            f"  {r['scenario']}: paths {seq['paths']}; retries {seq['retries']};"
            f" A CPU {fmt(seq['a_cpu_ms_per_delegation'], '.2f')} ms/delegation;"
            f" errors {seq['errors']};"
            f" B's task completed before A committed the park: {seq['b_done_before_a_parked']}"
            f" of {seq['executions']}; B's push delivered but ignored (came before the park):"
            f" {seq['push_delivered_but_ignored']}"
            + (
                f"; B answers returnImmediately with {r['b_answers_return_immediately']}"
                if "b_answers_return_immediately" in r
                else ""
            )
        )
        for via, x in seq["send_to_resume_by_via_ms"].items():
            print(
                f"    resumed by {via}: n {x['n']}, send -> resume p50"
                f" {fmt(x['p50_ms'], '.2f')} ms, p99 {fmt(x['p99_ms'], '.2f')} ms,"
                f" max {fmt(x['max_ms'], '.2f')} ms"
            )
    conc = [r for r in trips if "concurrent" in r]
    if conc:
        print("\nConcurrent closed loop (blocking sends to A):")
        header = [
            "scenario",
            "clients",
            "delegations/s",
            "RTT p50",
            "RTT p99",
            "client p50",
            "client p99",
            "A CPU %",
            "B CPU %",
            "A ms/deleg",
            "B ms/deleg",
            "errors",
            "paths",
        ]
        table = [header]
        for r in conc:
            c = r["concurrent"]
            rtt = c["legs_ms"]["send_to_resume"]
            table.append(
                [
                    r["scenario"],
                    str(c["clients"]),
                    fmt(c["delegations_per_s"], ",.1f"),
                    fmt(rtt["p50_ms"], ".1f"),
                    fmt(rtt["p99_ms"], ".1f"),
                    fmt(c["client_p50_ms"], ".1f"),
                    fmt(c["client_p99_ms"], ".1f"),
                    fmt(c["a_cpu_pct"], ".0f"),
                    fmt(c["b_cpu_pct"], ".0f"),
                    fmt(c["a_cpu_ms_per_delegation"], ".2f"),
                    fmt(c["b_cpu_ms_per_delegation"], ".2f"),
                    str(c["errors"]),
                    json.dumps(c["paths"]),
                ]
            )
        print_grid(table, left={0, 12})


def print_parked(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if not r["scenario"].startswith("parked") or "batches" not in r:
            continue
        mib = 2**20
        print(
            f"\n{r['scenario']}: delegations parked on A (B's task waits for ever):"
            f" {r['warmup_parked']} warm-up,"
            f" then batches of {r['parked']:,} sent over {r['park_clients']} connections"
            f" (returnImmediately); A RSS before: {r['a_rss_before_bytes'] / mib:.1f} MiB"
        )
        header = ["batch", "parked", "park s", "A RSS MiB", "A B/parked", "B B/parked", "retries"]
        extra = r["batches"][0].get("memprobe") is not None
        if extra:
            header += ["after gc B/p", "after trim B/p", "blocks/p", "gc objs/p"]
        table = [header]
        for k, x in enumerate(r["batches"], 1):
            line = [
                str(k),
                f"{x['parked_total']:,}",
                f"{x['park_s']:.1f}",
                f"{x['a_rss_bytes'] / mib:.1f}",
                f"{x['rss_bytes_per_parked']:,.0f}",
                f"{x['b_rss_bytes_per_parked']:,.0f}",
                str(x["send_retries"]),
            ]
            if extra:
                m = x["memprobe"]
                line += [
                    f"{m['rss_after_gc_per_parked']:,.0f}",
                    f"{m['rss_after_trim_per_parked']:,.0f}",
                    f"{m['blocks_per_parked']:,.1f}",
                    f"{m['gc_objects_per_parked']:,.1f}",
                ]
            table.append(line)
        print_grid(table, left=set())
        if extra:
            for k, x in enumerate(r["batches"], 1):
                print(f"  batch {k}: live objects per parked: {x['memprobe']['types_per_parked']}")
        print(
            f"  idle {r['idle_s']:.1f} s after batch 1: A CPU {r['idle_a_cpu_pct']:.1f} %,"
            f" B CPU {r['idle_b_cpu_pct']:.1f} % of a core;"
            f" GetTask polls {r['idle_getTask_polls_per_s']:.1f}/s"
            f" (A {fmt(r['idle_a_cpu_ms_per_poll'], '.2f')} ms,"
            f" B {fmt(r['idle_b_cpu_ms_per_poll'], '.2f')} ms CPU per poll);"
            f" {r['polled_at_least_once']:,} of {r['parked_in_db']:,} polled so far;"
            f" answered settled: {r['settled_answers']}"
        )
        print(
            f"  idle {r['idle_s']:.1f} s before anything was parked (baseline): A CPU"
            f" {r['idle_empty_a_cpu_pct']:.1f} %, B CPU {r['idle_empty_b_cpu_pct']:.1f} %"
        )


def print_profiles(rows: list[dict[str, Any]], top: int = 12) -> None:
    for r in rows:
        for name, prof in (r.get("profile") or {}).items():
            if "error" in prof:
                print(f"\nprofile of {name} ({r['scenario']}): {prof['error']}")
                continue
            conc = r.get("concurrent") or {}
            main_ms = conc.get(f"{name}_main_thread_cpu_ms_per_delegation")
            print(
                f"\npy-spy, {r['scenario']} concurrent window, node {name.upper()}:"
                f" {prof['samples']:,} samples ({prof['file']}); samples by thread %:"
                f" {prof['threads_pct']}; CPU per delegation (psutil): event-loop thread"
                f" {fmt(main_ms, '.2f')} ms, other threads"
                f" {fmt(conc.get(f'{name}_other_threads_cpu_ms_per_delegation'), '.2f')} ms"
            )
            for thread in ("MainThread", "sqlite writer"):
                t = prof["by_thread"].get(thread)
                if not t:
                    continue
                print(f"  {thread}: self time by group, % of its samples: {t['self_groups_pct']}")
                if thread == "MainThread" and main_ms:
                    per = {g: round(v * main_ms / 100, 2) for g, v in t["self_groups_pct"].items()}
                    print(f"    = ms of event-loop CPU per delegation: {per}")
                print(f"  {thread}: self time, top functions %:")
                for frame, pct_ in t["self_top_pct"][:top]:
                    print(f"    {pct_:5.1f}  {frame}")
                print(f"  {thread}: inclusive, top functions %:")
                for frame, pct_ in t["inclusive_top_pct"][: top + 6]:
                    print(f"    {pct_:5.1f}  {frame}")


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {r["scenario"]: r for r in rows if not r.get("failed")}
    push = by.get("push", {}).get("sequential", {}).get("legs_ms", {}).get("send_to_resume", {})
    p50, p99 = push.get("p50_ms"), push.get("p99_ms")
    parked_rows = [by[name] for name in ("parked", "parked-burst") if name in by]
    out = [
        {
            "target": f"push: A send -> resume p50 < {PUSH_P50_MS:g} ms",
            "value": p50,
            "unit": "ms",
            "ok": None if p50 is None else p50 < PUSH_P50_MS,
        },
        {
            "target": f"push: A send -> resume p99 < {PUSH_P99_MS:g} ms",
            "value": p99,
            "unit": "ms",
            "ok": None if p99 is None else p99 < PUSH_P99_MS,
        },
    ]
    for r in parked_rows:
        per = r.get("rss_bytes_per_parked")
        out.append(
            {
                "target": f"{r['scenario']} ({r['park_clients']} conn.): A RSS < 2,048 B"
                " per parked",
                "value": per,
                "unit": "B",
                "ok": None if per is None else per < PARKED_BYTES,
            }
        )
    for name in ROUND_TRIPS:
        trip = by.get(name)
        if trip is None:
            continue
        bad = trip["sequential"]["errors"] + trip.get("concurrent", {}).get("errors", 0)
        out.append(
            {
                "target": f"{name}: every send answered COMPLETED",
                "value": bad,
                "unit": "errors",
                "ok": bad == 0,
            }
        )
    return out


def print_targets(results: list[dict[str, Any]]) -> None:
    print("\nTargets:")
    for t in results:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["ok"]]
        value = "-" if t["value"] is None else f"{t['value']:,.4g} {t['unit']}"
        print(f"  {verdict:4}  {t['target']:52} {value}")


# -- main --------------------------------------------------------------------------------


async def run_all(names: list[str], args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    certs = make_certs(root / "certs")
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            if name.startswith("parked"):
                rows.append(await parked(name, args, root / name, certs))
            else:
                rows.append(await round_trip(name, args, root / name, certs))
        except (RuntimeError, OSError, KeyError) as exc:
            rows.append({"scenario": name, "failed": f"{type(exc).__name__}: {exc}"})
    return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def _interrupted(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--n", type=int, default=500, help="measured sequential sends (push)")
    parser.add_argument("--warmup", type=int, default=50, help="sequential warm-up sends")
    parser.add_argument("--watchdog-n", type=int, default=500)
    parser.add_argument("--watchdog-warmup", type=int, default=50)
    parser.add_argument("--lost-push-n", type=int, default=100, help="(~1 s each)")
    parser.add_argument("--lost-push-warmup", type=int, default=5)
    parser.add_argument(
        "--poll", type=float, default=0.05, help="delegate poll (watchdog, lost-push)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="0: no concurrent run")
    parser.add_argument("--conc-warmup", type=float, default=2.0)
    parser.add_argument("--conc-duration", type=float, default=10.0)
    parser.add_argument("--probe", type=int, default=50, help="direct sends to B (0: none)")
    parser.add_argument("--parked", type=int, default=1000)
    parser.add_argument("--parked-warmup", type=int, default=50)
    parser.add_argument(
        "--parked-batches", type=int, default=2, help="batches of --parked (2nd: marginal)"
    )
    parser.add_argument(
        "--park-clients", type=int, default=1, help="connections that park (parked)"
    )
    parser.add_argument(
        "--burst-clients", type=int, default=16, help="connections that park (parked-burst)"
    )
    parser.add_argument(
        "--memprobe",
        type=int,
        nargs="?",
        const=0,
        default=None,
        help="run A under memprobe.py (N: with tracemalloc, N frames); diagnosis only",
    )
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument(
        "--request-timeout", type=float, default=60.0, help="s per SendMessage (then an error)"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="profile A and B with py-spy during the concurrent window; raw files to DIR",
    )
    parser.add_argument("--py-spy-scenarios", default="push", help="comma-separated")
    parser.add_argument("--py-spy-rate", type=int, default=250, help="samples/s")
    parser.add_argument(
        "--py-spy-blocking",
        action="store_true",
        help="pause the target for each sample (exact stacks, more overhead)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")

    args.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if args.pin:
        os.sched_setaffinity(0, {CLIENT_CORE})
    else:
        print("warning: fewer than 2 cores or no taskset: nothing is pinned", file=sys.stderr)
    args.py_spy_scenarios = {x.strip() for x in args.py_spy_scenarios.split(",")}
    if args.py_spy is not None and not (VENV_BIN / "py-spy").exists():
        parser.error(f"--py-spy needs {VENV_BIN / 'py-spy'} (.venv/bin/pip install py-spy)")
    global REQUEST_TIMEOUT
    REQUEST_TIMEOUT = args.request_timeout
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the nodes are stopped below.
    signal.signal(signal.SIGTERM, _interrupted)
    root = BENCH / "results" / "tmp" / f"delegation-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        rows = asyncio.run(run_all(names, args, root))
    finally:
        for proc in CHILDREN:
            stop(proc)
        if not args.keep_tmp:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)

    where = f"A on core {A_CORE}; B and the client on core {B_CORE}"
    print(
        f"\nDelegation A -> B over mutual TLS (A2A 1.0, SQLite stores);"
        f" {where if args.pin else 'NOT pinned'}"
    )
    for r in rows:
        if r.get("failed"):
            print(f"\n{r['scenario']} FAILED: {r['failed']}")
    print_round_trips(rows)
    print_parked(rows)
    print_profiles(rows)
    results = targets(rows)
    print_targets(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: _jsonable(v) for k, v in vars(args).items() if k != "json"}
        document = {
            "benchmark": "delegation-rtt",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "settings": {**settings, "cores": os.cpu_count(), "placement": where},
            "rows": rows,
            "targets": results,
            "versions": a2a_versions(),
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    bad = any(
        r.get("failed")
        or r.get("sequential", {}).get("errors")
        or r.get("concurrent", {}).get("errors")
        for r in rows
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
