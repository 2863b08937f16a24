"""A2A ``SendMessage`` throughput: agent-node against the a2a-sdk server, in one run.

    .venv/bin/python bench/a2a/send_bench.py \
        [--systems ours,ours-mtls,sdk-memory,sdk-memory-mtls,...] [--duration 8] [--warmup 2] \
        [--connections 32] [--client raw|httpx|httpx2] [--json bench/results/a2a_send.json] \
        [--keep-tmp]

Systems (each a fresh server subprocess on a free loopback port, fresh scratch dir):

* ``ours``: ``agent-node serve --config bench/a2a/echo-node.yaml --insecure-dev``
  on ``sqlite:///<scratch>/bench.db``: every task a durable execution of the
  one-step echo workflow (``echo_workflow.py``).
* ``sdk-memory`` / ``sdk-sqlite``: ``sdk_server.py``, an a2a-sdk 1.x echo
  ``AgentExecutor`` on ``InMemoryTaskStore`` / ``DatabaseTaskStore`` on
  ``sqlite+aiosqlite:///<scratch>/sdk.db``.
* ``starlette``: ``starlette_server.py``, a bare JSON endpoint (calibration).
  ``starlette-grpc``: the same process serving a bare ``grpc.aio``
  ``SendMessage`` (calibration: the floor under a gRPC server on grpcio,
  as the a2a-sdk's is; ours has its own HTTP/2, in the node's event loop).
* ``ours-rest`` / ``sdk-memory-rest``: ``ours`` / ``sdk-memory`` measured over
  the HTTP+JSON binding (``POST /a2a/message:send``, the params as the body)
  instead of JSON-RPC.
* ``ours-grpc`` / ``sdk-memory-grpc``: ``ours`` / ``sdk-memory`` serving
  their gRPC binding too (``--grpc-port``), measured over it by
  ``grpc_load.py`` (``lf.a2a.v1.A2AService/SendMessage``, one channel per
  connection, the same window and checks) instead of JSON-RPC.
* ``ours-jwt`` / ``ours-apikey``: ``ours`` over TLS with ``auth:`` taking
  bearer JWTs (ES256, the key in a JWK Set file) / API keys, the load client
  presenting no certificate but one token / one key on every request: what
  authenticating by credentials costs next to ``ours-mtls`` (the same TLS).
* ``<system>-mtls``: the same server over mutual TLS (``ours-mtls``:
  ``--cert-dir <certs> --identity server`` instead of ``--insecure-dev``; the
  others: ``--tls-dir <certs>``), measured with the same load client over
  HTTPS with a client certificate. The certificates are made once per run by
  agent-node's own PKI and every SSL context by ``agent_node.security.tls``
  (``mtls.py``), so all servers and the client share identical TLS settings.

Method: the server is pinned to core 0 (``taskset -c 0``) and the load
client (``load.py``) to core 1; this process also moves to core 1. The
client keeps ``--connections`` keep-alive connections, one per client, sends
blocking A2A 1.0 ``SendMessage`` requests, checks every answer, warms up for
``--warmup`` s and measures ``--duration`` s. Reported per system: requests/s,
p50/p99 latency, server CPU (user + sys of the server and its descendants
over the window) per request and as % of a core, server RSS at the end, the
client's own CPU (a client near 100 % is the bottleneck, and flagged), and
errors (a run with any error is flagged). Then what the connections cost to
open (all at once, before the warm-up: the TLS handshakes, which keep-alive
pays once per connection), what mutual TLS costs each server against its
plain row, and the targets, PASS/FAIL.

Needs the project's venv (psutil, a2a-sdk with its ``http-server`` and
``sqlite`` extras, grpcio for the ``-grpc`` rows: the ``test`` extra) and
``taskset``. Scratch dirs go under
``bench/results/tmp/`` and are deleted unless ``--keep-tmp``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mtls  # bench/a2a/mtls.py: this script's directory is on sys.path
import psutil

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
VENV_BIN = Path(sys.executable).parent
SERVER_CORE, CLIENT_CORE = 0, 1
CARD_PATH = "/.well-known/agent-card.json"
MTLS = "-mtls"  # the suffix of a system's mutual-TLS twin
REST = "-rest"  # the suffix of a system measured over HTTP+JSON
GRPC = "-grpc"  # the suffix of a system measured over gRPC
ALL_SYSTEMS = (
    *(
        name + suffix
        for name in (
            "ours",
            "sdk-memory",
            "sdk-sqlite",
            "starlette",
            "ours-rest",
            "sdk-memory-rest",
            "ours-grpc",
            "sdk-memory-grpc",
            "starlette-grpc",
        )
        for suffix in ("", MTLS)
    ),
    "ours-jwt",
    "ours-apikey",
)
#: sdk-sqlite-mtls is left out: no target reads it, and over TLS sdk-sqlite
#: would measure its store's locking again, not TLS.
DEFAULT_SYSTEMS = tuple(name for name in ALL_SYSTEMS if name != "sdk-sqlite" + MTLS)

#: A client using more than this share of its core may be what limits the rate.
CLIENT_BOUND_PCT = 90.0
#: A server using less than this share of its core under a closed loop of
#: ``--connections`` clients is waiting on something other than its CPU.
SERVER_IDLE_PCT = 75.0


@dataclass(frozen=True)
class System:
    name: str
    note: str
    check: str  # load.py --check
    tls: bool = False
    #: Callers authenticate by ``jwt`` or ``apikey`` instead of a certificate.
    auth: str | None = None

    @property
    def base(self) -> str:
        """The server this system runs (whatever the binding, with or without TLS)."""
        name = self.name.removesuffix("-jwt").removesuffix("-apikey")
        return name.removesuffix(MTLS).removesuffix(REST).removesuffix(GRPC)

    @property
    def rest(self) -> bool:
        """Measured over HTTP+JSON (``POST /a2a/message:send``) instead of JSON-RPC."""
        return self.name.removesuffix(MTLS).endswith(REST)

    @property
    def grpc(self) -> bool:
        """Measured over gRPC (on a port of its own) instead of JSON-RPC."""
        return self.name.removesuffix(MTLS).endswith(GRPC)

    def command(
        self, port: int, scratch: Path, certs: Path | None, grpc_port: int | None = None
    ) -> list[str]:
        """The server's command line; ``certs`` (mtls.py's folder) for a TLS system,
        ``grpc_port`` for a gRPC one."""
        grpc = ["--grpc-port", str(grpc_port)] if grpc_port is not None else []
        return [*self._serve(port, scratch), *self._tls_options(certs), *grpc]

    def _tls_options(self, certs: Path | None) -> list[str]:
        if self.base == "ours":
            if certs is None:
                # agent-node refuses plain HTTP unless told it is a loopback dev setup.
                return ["--insecure-dev"]
            return ["--cert-dir", str(certs), "--identity", mtls.SERVER]
        return [] if certs is None else ["--tls-dir", str(certs)]

    def _serve(self, port: int, scratch: Path) -> list[str]:
        py = sys.executable
        if self.base == "ours":
            config = scratch / "echo-node.yaml" if self.auth else HERE / "echo-node.yaml"
            return [
                str(VENV_BIN / "agent-node"),
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--store",
                f"sqlite:///{scratch / 'bench.db'}",
            ]
        if self.base == "sdk-memory":
            return [py, str(HERE / "sdk_server.py"), "--port", str(port), "--store", "memory"]
        if self.base == "sdk-sqlite":
            url = f"sqlite+aiosqlite:///{scratch / 'sdk.db'}"
            return [py, str(HERE / "sdk_server.py"), "--port", str(port), "--store", url]
        if self.base == "starlette":
            return [py, str(HERE / "starlette_server.py"), "--port", str(port)]
        raise ValueError(self.name)


PLAIN_SYSTEMS = {
    "ours": System("ours", "agent-node serve, SQLite store (WAL, synchronous=NORMAL)", "task"),
    "sdk-memory": System("sdk-memory", "a2a-sdk DefaultRequestHandler, InMemoryTaskStore", "task"),
    "sdk-sqlite": System(
        "sdk-sqlite", "a2a-sdk DefaultRequestHandler, DatabaseTaskStore (aiosqlite)", "task"
    ),
    "starlette": System("starlette", "bare Starlette JSON endpoint (calibration)", "json"),
    "starlette-grpc": System(
        "starlette-grpc", "bare grpc.aio SendMessage answering an echo task (calibration)", "task"
    ),
    "ours-rest": System("ours-rest", "agent-node serve, SQLite store; HTTP+JSON binding", "task"),
    "sdk-memory-rest": System(
        "sdk-memory-rest", "a2a-sdk DefaultRequestHandler, InMemoryTaskStore; HTTP+JSON", "task"
    ),
    "ours-grpc": System("ours-grpc", "agent-node serve, SQLite store; gRPC binding", "task"),
    "sdk-memory-grpc": System(
        "sdk-memory-grpc", "a2a-sdk GrpcHandler, InMemoryTaskStore; gRPC (grpc.aio)", "task"
    ),
}


def _mtls_twin(plain: System) -> System:
    note = f"{plain.note}; mutual TLS (agent_node.security.tls contexts)"
    return System(plain.name + MTLS, note, plain.check, tls=True)


SYSTEMS = {
    **PLAIN_SYSTEMS,
    **{s.name + MTLS: _mtls_twin(s) for s in PLAIN_SYSTEMS.values()},
    "ours-jwt": System(
        "ours-jwt", "agent-node serve over TLS; a bearer JWT, no certificate", "task", True, "jwt"
    ),
    "ours-apikey": System(
        "ours-apikey",
        "agent-node serve over TLS; an API key, no certificate",
        "task",
        True,
        "apikey",
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, command: list[str], pin: bool) -> list[str]:
    # taskset execs the command, so the pid Popen returns is the server's own.
    return ["taskset", "-c", str(core), *command] if pin else command


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    tls: ssl.SSLContext | None = None,
    timeout: float = 60.0,
) -> None:
    """Poll the card endpoint until it answers 200 (or the server dies).

    With ``tls`` (the client's context, certificate included) over HTTPS:
    a mutual-TLS server asks for the client certificate on every connection.
    """
    deadline = time.monotonic() + timeout
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}{CARD_PATH}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1, context=tls) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready on port {port} after {timeout:.0f} s")


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (agent-node and uvicorn shut down cleanly on it), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_system(
    system: System, args: argparse.Namespace, scratch: Path, certs: Path | None
) -> dict[str, Any]:
    """Start ``system``'s server, load it, stop it: its row (``failed`` if it could not run)."""
    scratch.mkdir(parents=True)
    port = free_port()
    grpc_port = free_port() if system.grpc else None
    log = scratch / "server.log"
    row: dict[str, Any] = {"system": system.name, "note": system.note, "mtls": system.tls}
    certs = certs if system.tls else None
    header = credentials(system.auth, scratch) if system.auth else None
    with log.open("wb") as out:
        # cwd = scratch: nothing a server writes by default lands in the repository.
        proc = subprocess.Popen(
            pinned(SERVER_CORE, system.command(port, scratch, certs, grpc_port), args.pin),
            cwd=scratch,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(proc, port, mtls.client_context(certs) if certs else None)
        credential = ["--header", header] if header else []
        load = [
            sys.executable,
            str(HERE / "load.py"),
            "--url",
            f"{'https' if certs else 'http'}://127.0.0.1:{port}/a2a"
            + ("/message:send" if system.rest else ""),
            "--server-pid",
            str(proc.pid),
            "--connections",
            str(args.connections),
            "--warmup",
            str(args.warmup),
            "--duration",
            str(args.duration),
            "--check",
            system.check,
            "--client",
            args.client,
            *(["--tls-dir", str(certs)] if certs else []),
            *(["--binding", "rest"] if system.rest else []),
            *credential,
        ]
        if grpc_port is not None:
            load = grpc_load(proc.pid, grpc_port, args, certs)
        done = subprocess.run(
            pinned(CLIENT_CORE, load, args.pin),
            capture_output=True,
            text=True,
            timeout=args.warmup + args.duration + 120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"load client exit {done.returncode}: {done.stderr[-2000:]}")
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
        row["server_rss_bytes"] = tree_rss(proc.pid)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} during the run")
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        row["failed"] = str(exc)
    finally:
        row["server_exit"] = stop(proc)
    if row.get("failed") or row.get("errors_total"):
        row["server_log_tail"] = tail(log)
    row["flags"] = flags(row)
    return row


def credentials(auth: str, scratch: Path) -> str:
    """``ours`` configured (in ``scratch``) to take ``auth`` callers; the header
    (NAME=VALUE) the load client presents."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent_node.security.api_keys import add_key

    text = (HERE / "echo-node.yaml").read_text()
    text = text.replace("echo_workflow.py:wf", f"{HERE / 'echo_workflow.py'}:wf")
    if auth == "apikey":
        key = add_key(scratch / "api-keys.yaml", "client")
        (scratch / "echo-node.yaml").write_text(text + "auth: {api_keys: {}}\n")
        return f"X-API-Key={key}"
    signing = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(signing.public_key(), as_dict=True)
    (scratch / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "bench"}]}))
    claims = {"iss": "https://issuer.bench", "aud": "a2a-bench", "sub": "client"}
    token = jwt.encode(
        {**claims, "exp": time.time() + 3600}, signing, "ES256", headers={"kid": "bench"}
    )
    auth_config = (
        "auth: {jwt: {issuer: 'https://issuer.bench', audience: a2a-bench,"
        " jwks_file: jwks.json, algorithms: [ES256]}}\n"
    )
    (scratch / "echo-node.yaml").write_text(text + auth_config)
    return f"Authorization=Bearer {token}"


def grpc_load(pid: int, port: int, args: argparse.Namespace, certs: Path | None) -> list[str]:
    """The gRPC load client's command line (the same window and checks as load.py)."""
    return [
        sys.executable,
        str(HERE / "grpc_load.py"),
        "--target",
        f"127.0.0.1:{port}",
        "--server-pid",
        str(pid),
        "--connections",
        str(args.connections),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        *(["--tls-dir", str(certs)] if certs else []),
    ]


def flags(row: dict[str, Any]) -> list[str]:
    out = []
    if row.get("failed"):
        out.append("FAILED")
    if row.get("errors_total"):
        out.append(f"ERRORS({row['errors_total']})")
    if row.get("client_cpu_pct", 0) > CLIENT_BOUND_PCT:
        out.append("CLIENT-BOUND")
    if "server_cpu_pct" in row and row["server_cpu_pct"] < SERVER_IDLE_PCT:
        out.append("SERVER-NOT-SATURATED")
    return out


# -- report ---------------------------------------------------------------------------------


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec)


def print_grid(table: list[list[str]], left: set[int]) -> None:
    """Aligned columns (those in ``left`` flush left), a rule under the header line."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for n, line in enumerate(table):
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_table(rows: list[dict[str, Any]]) -> None:
    header = [
        "system",
        "req/s",
        "p50 ms",
        "p99 ms",
        "srv CPU ms/req",
        "srv CPU %",
        "srv RSS MiB",
        "client CPU %",
        "requests",
        "errors",
        "flags",
    ]
    table = [header]
    for r in rows:
        rss = r.get("server_rss_bytes")
        table.append(
            [
                r["system"],
                fmt(r.get("rps"), ",.0f"),
                fmt(r.get("p50_ms"), ".1f"),
                fmt(r.get("p99_ms"), ".1f"),
                fmt(r.get("server_cpu_ms_per_req"), ".3f"),
                fmt(r.get("server_cpu_pct"), ".0f"),
                fmt(rss / 2**20 if rss else None, ".1f"),
                fmt(r.get("client_cpu_pct"), ".0f"),
                fmt(r.get("requests"), ","),
                fmt(r.get("errors_total"), "d"),
                " ".join(r.get("flags", [])) or "ok",
            ]
        )
    print_grid(table, left={0, 10})
    print(
        f"flags: CLIENT-BOUND = client CPU > {CLIENT_BOUND_PCT:g} % of its core;"
        f" SERVER-NOT-SATURATED = server CPU < {SERVER_IDLE_PCT:g} % of its core"
        " (the rate is limited by waiting, not by the server's CPU)"
    )
    for r in rows:
        if r.get("failed"):
            print(f"\n{r['system']} FAILED: {r['failed']}")
        if r.get("error_samples"):
            print(f"\n{r['system']} errors {r.get('error_kinds')}: {r['error_samples']}")
        if r.get("server_log_tail"):
            print(f"{r['system']} server log (tail):\n{r['server_log_tail']}")


def print_connect(rows: list[dict[str, Any]]) -> None:
    """The connection burst before the warm-up (raw client only): the handshake's cost."""
    measured = [r for r in rows if "connect_ms" in r]
    if not measured:
        return
    n, rounds = measured[0].get("connections"), measured[0].get("connect_rounds")
    print(
        f"\nConnection set-up, before the warm-up: {rounds} rounds of {n} connections opened at"
        " once, then closed (keep-alive pays this once per connection, outside the window)"
    )
    header = ["system", "TLS", "open all ms", "srv CPU ms/conn", "client CPU ms/conn", "errors"]
    table = [header]
    for r in measured:
        tls = r.get("tls") or {}
        table.append(
            [
                r["system"],
                f"{tls.get('version')} {tls.get('cipher')}" if tls else "-",
                fmt(r.get("connect_ms"), ".1f"),
                fmt(r.get("connect_server_cpu_ms_per_conn"), ".3f"),
                fmt(r.get("connect_client_cpu_ms_per_conn"), ".3f"),
                fmt(r.get("connect_errors"), "d"),
            ]
        )
    print_grid(table, left={0, 1})


def tls_costs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each system measured both ways: what mutual TLS keeps of its rate, adds to its CPU."""
    by = {r["system"]: r for r in rows if not r.get("failed")}
    out = []
    for plain in PLAIN_SYSTEMS:
        a, b = by.get(plain), by.get(plain + MTLS)
        if a is None or b is None:
            continue
        cpu_a, cpu_b = a.get("server_cpu_ms_per_req"), b.get("server_cpu_ms_per_req")
        out.append(
            {
                "system": plain,
                "rps_kept": _ratio(b, a),
                "server_cpu_ms_per_req_added": None if None in (cpu_a, cpu_b) else cpu_b - cpu_a,
                "handshake_server_cpu_ms_added": _diff(b, a, "connect_server_cpu_ms_per_conn"),
            }
        )
    return out


def print_tls_costs(costs: list[dict[str, Any]]) -> None:
    if not costs:
        return
    print("\nMutual TLS against plain HTTP, same server (ratio and differences of the rows above):")
    for c in costs:
        print(
            f"  {c['system']:12} keeps {fmt(c['rps_kept'], '.2f')}x of its req/s;"
            f" server CPU {fmt(c['server_cpu_ms_per_req_added'], '+.3f')} ms/req;"
            f" handshake {fmt(c['handshake_server_cpu_ms_added'], '+.3f')} ms server CPU/conn"
        )


def _ratio(row: dict[str, Any] | None, peer: dict[str, Any] | None) -> float | None:
    """``row``'s req/s over ``peer``'s (None when either is missing or zero)."""
    if row is None or peer is None or not peer.get("rps") or row.get("rps") is None:
        return None
    return float(row["rps"]) / float(peer["rps"])


def _diff(row: dict[str, Any], base: dict[str, Any], key: str) -> float | None:
    a, b = row.get(key), base.get(key)
    return None if a is None or b is None else float(a) - float(b)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets for ``ours`` and ``ours-mtls``; one whose inputs are missing is n/a."""
    by = {r["system"]: r for r in rows if not r.get("failed")}
    ours = by.get("ours")
    mem, sql = _ratio(ours, by.get("sdk-memory")), _ratio(ours, by.get("sdk-sqlite"))
    cpu = ours.get("server_cpu_ms_per_req") if ours else None
    p99 = ours.get("p99_ms") if ours else None
    return [
        {"target": "ours req/s >= 3x sdk-memory", "value": mem, "unit": "x", "ok": _ge(mem, 3)},
        {"target": "ours req/s >= 15x sdk-sqlite", "value": sql, "unit": "x", "ok": _ge(sql, 15)},
        {
            "target": "ours server CPU <= 1 ms/request",
            "value": cpu,
            "unit": "ms",
            "ok": None if cpu is None else cpu <= 1.0,
        },
        {
            "target": "ours p99 < 60 ms",
            "value": p99,
            "unit": "ms",
            "ok": None if p99 is None else p99 < 60.0,
        },
        _clean("ours", ours),
        *mtls_targets(by),
        *rest_targets(by),
        *grpc_targets(by),
        *auth_targets(by),
    ]


def auth_targets(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A bearer JWT costs < 0.1 ms of server CPU per request more than mutual
    TLS (the same TLS; the token verified once, its key cached)."""
    rows = []
    for name in ("ours-jwt", "ours-apikey"):
        row, base = by.get(name), by.get("ours" + MTLS)
        extra = _diff(row, base, "server_cpu_ms_per_req") if row and base else None
        rows.append(
            {
                "target": f"{name} server CPU <= ours-mtls + 0.1 ms/request",
                "value": extra,
                "unit": "ms",
                "ok": None if extra is None else extra <= 0.1,
            }
        )
    return rows


def grpc_targets(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """gRPC at least JSON-RPC's rate, and >= 3x the SDK's gRPC."""
    grpc = by.get("ours" + GRPC)
    kept = _ratio(grpc, by.get("ours"))
    sdk = _ratio(grpc, by.get("sdk-memory" + GRPC))
    return [
        {
            "target": "ours-grpc req/s >= 1x ours (JSON-RPC)",
            "value": kept,
            "unit": "x",
            "ok": _ge(kept, 1.0),
        },
        {
            "target": "ours-grpc req/s >= 3x sdk-memory-grpc",
            "value": sdk,
            "unit": "x",
            "ok": _ge(sdk, 3),
        },
    ]


def rest_targets(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """HTTP+JSON within 10 % of JSON-RPC's rate, and >= 3x the SDK's HTTP+JSON."""
    rest = by.get("ours" + REST)
    kept = _ratio(rest, by.get("ours"))
    sdk = _ratio(rest, by.get("sdk-memory" + REST))
    return [
        {
            "target": "ours-rest req/s >= 0.9x ours (JSON-RPC)",
            "value": kept,
            "unit": "x",
            "ok": _ge(kept, 0.9),
        },
        {
            "target": "ours-rest req/s >= 3x sdk-memory-rest",
            "value": sdk,
            "unit": "x",
            "ok": _ge(sdk, 3),
        },
    ]


def mtls_targets(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Mutual TLS costs ours < 25 % of its plain rate, and keeps it >= 3x the SDK over mTLS."""
    mtls_row = by.get("ours" + MTLS)
    kept = _ratio(mtls_row, by.get("ours"))
    sdk = _ratio(mtls_row, by.get("sdk-memory" + MTLS))
    return [
        {
            "target": "ours-mtls req/s >= 0.75x ours (mTLS < 25 %)",
            "value": kept,
            "unit": "x",
            "ok": _ge(kept, 0.75),
        },
        {
            "target": "ours-mtls req/s >= 3x sdk-memory-mtls",
            "value": sdk,
            "unit": "x",
            "ok": _ge(sdk, 3),
        },
        _clean("ours" + MTLS, mtls_row),
    ]


def _clean(name: str, row: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "target": f"{name} answered every request correctly",
        "value": row.get("errors_total") if row else None,
        "unit": "errors",
        "ok": None if row is None else not row.get("errors_total"),
    }


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def print_targets(results: list[dict[str, Any]]) -> None:
    print("\nTargets (ours):")
    for t in results:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["ok"]]
        value = "-" if t["value"] is None else f"{t['value']:,.3g} {t['unit']}"
        print(f"  {verdict:4}  {t['target']:46} {value}")


def versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "openssl": ssl.OPENSSL_VERSION,  # what every TLS row runs on, both ends
    }
    dists = ("agent-node", "a2a-sdk", "starlette", "uvicorn", "sqlalchemy", "aiosqlite", "grpcio")
    for dist in (*dists, "cryptography"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    for optional in ("httptools", "uvloop"):  # uvicorn uses them when installed
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[optional] = metadata.version(optional)
    return out


# -- main -------------------------------------------------------------------------------------


def run_all(names: list[str], args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Every system's row, in order; the certificates are made once, for all of them."""
    certs = None
    if any(SYSTEMS[name].tls for name in names):
        certs = mtls.make(root / "certs")
    rows = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(run_system(SYSTEMS[name], args, root / name, certs))
    return rows


def write_json(path: Path, args: argparse.Namespace, names: list[str], **parts: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tls = None
    if any(SYSTEMS[name].tls for name in names):
        tls = {
            "certificates": f"agent_node.security.pki, trust domain {mtls.TRUST_DOMAIN},"
            " P-256 keys, one CA; server and client leaf each presented with the CA",
            "contexts": "agent_node.security.tls server_context / client_context"
            " (TLS >= 1.2, client certificate required, host name checked)",
        }
    document = {
        "benchmark": "a2a-send",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "systems": names,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "client": args.client,
            "pinned": args.pin,
            "cores": os.cpu_count() or 1,
            "mtls": tls,
        },
        **parts,
        "versions": versions(),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, from {', '.join(ALL_SYSTEMS)}",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client", choices=["raw", "httpx", "httpx2"], default="raw")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the scratch dirs")
    args = parser.parse_args()
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(ALL_SYSTEMS)}")

    cores = os.cpu_count() or 1
    args.pin = cores >= 2 and shutil.which("taskset") is not None
    if args.pin:
        os.sched_setaffinity(0, {CLIENT_CORE})  # keep this process off the server's core
    else:
        print("warning: fewer than 2 cores or no taskset: nothing is pinned", file=sys.stderr)

    root = BENCH / "results" / "tmp" / f"a2a-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        rows = run_all(names, args, root)
    finally:
        if not args.keep_tmp:
            shutil.rmtree(root, ignore_errors=True)

    where = f"server on core {SERVER_CORE}, client on core {CLIENT_CORE}"
    print(
        f"\nA2A SendMessage (blocking, A2A-Version 1.0; JSON-RPC unless the name says -rest or"
        f" -grpc): {args.connections} connections,"
        f" {args.warmup:g} s warm-up + {args.duration:g} s measured, {args.client} client;"
        f" {where if args.pin else 'NOT pinned'}"
    )
    print_table(rows)
    print_connect(rows)
    costs = tls_costs(rows)
    print_tls_costs(costs)
    results = targets(rows)
    print_targets(results)
    if args.json:
        write_json(args.json, args, names, rows=rows, tls_costs=costs, targets=results)
    bad = any(r.get("failed") or r.get("errors_total") for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
