"""The load client of the A2A SendMessage benchmark (run by send_bench.py, pinned to a core).

    python bench/a2a/load.py --url http://127.0.0.1:P/a2a --server-pid PID \
        [--connections 32] [--warmup 2] [--duration 8] [--check task|json] [--client raw|httpx]
    python bench/a2a/load.py --url https://127.0.0.1:P/a2a --tls-dir CERTS ...   # mutual TLS

``--connections`` clients each keep one HTTP/1.1 keep-alive connection and send
blocking A2A 1.0 ``SendMessage`` requests back to back (closed loop: a client
sends its next request when the previous answer has arrived). Every request
has a unique ``messageId`` and text; every answer is checked: HTTP 200, a
JSON-RPC ``result`` with the same ``id``, and for ``--check task`` a task in
``TASK_STATE_COMPLETED`` whose first artifact's first part is the echoed text
(``--check json``, for the calibration endpoint: any JSON object ``result``).

The clients run for ``--warmup`` seconds, then for ``--duration`` seconds
measured. The window's bounds are the moments the CPU times are sampled:
the server's (``--server-pid`` and all its descendants, user + sys, via
psutil) and this process's own, so requests, CPU and time are counted over
the same interval. Only requests that complete inside the window count.

``--client raw`` (the default) speaks HTTP/1.1 over asyncio streams with
pre-formatted request bytes and a minimal response parser (Content-Length or
chunked bodies): about a tenth of httpx's CPU per request, so that one core
of client can saturate one core of the fastest server. ``--client httpx``
runs 32 separate ``httpx.AsyncClient``\\ s instead, for comparison;
``--client httpx2`` the same over HTTP/2 (TLS only: each client's one
connection negotiates ``h2``, and every answer is checked to be HTTP/2).

``--tls-dir`` (with an ``https`` URL) speaks mutual TLS: every connection
presents ``client.pem`` and checks the server against ``ca.pem`` through
``mtls.client_context`` (agent-node's own client settings). Connections are
keep-alive, so the handshake is paid once per connection, not per request;
a fresh context holds no session to resume, so each one is a full handshake.

Connection set-up (raw client only), before the warm-up: ``CONNECT_ROUNDS``
times, all ``--connections`` connections are opened at once (TCP, plus the
TLS handshake with ``--tls-dir``), then closed again; ``connect_ms`` is the
mean time until the last of a round is established. The server's CPU over
the rounds and a short settle after them (``CONNECT_SETTLE_S``: its last
handshake and close steps may still be running when the client is done)
divided by the connections opened is ``connect_server_cpu_ms_per_conn``:
what one connection costs the server to accept, set up and close. Against
the plain row of the same server, that is the TLS handshake. Several rounds
because psutil counts CPU in 10 ms ticks. Then the connections the load runs
on are opened, outside that measurement.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

COMPLETED = "TASK_STATE_COMPLETED"
#: After the connection burst: the server may still be verifying the client's
#: last certificate when the client already counts its handshake done (TLS 1.3).
CONNECT_SETTLE_S = 0.25
#: Connection bursts measured: 4 x 32 = 128 connections, ~0.08 ms per tick.
CONNECT_ROUNDS = 4


class CheckError(Exception):
    """An answer that is not what the benchmark asked for (counted as an error)."""


@dataclass
class Stats:
    """Shared by all clients; ``window`` is set while the measured window is open."""

    window: bool = False
    done: bool = False
    latencies: list[float] = field(default_factory=list)  # seconds, window only
    completed_total: int = 0
    errors_total: int = 0
    errors_window: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def error(self, exc: BaseException) -> None:
        self.errors_total += 1
        if self.window:
            self.errors_window += 1
        kind = type(exc).__name__
        self.error_kinds[kind] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {str(exc)[:300]}")


#: ``--binding``: JSON-RPC (a SendMessage envelope) or HTTP+JSON (the params
#: posted to ``…/message:send``, the result as the body).
BINDING = "jsonrpc"


def request_body(worker: int, seq: int, tag: str) -> tuple[bytes, str, int]:
    """The body, the text the answer must echo, and the JSON-RPC id."""
    rpc_id = worker * 1_000_000_000 + seq
    text = f"echo {tag}-{worker}-{seq}"
    # Formatted by hand (no json.dumps): the client must stay cheap per request.
    message = (
        f'{{"messageId":"m-{tag}-{worker}-{seq}","role":"ROLE_USER","parts":[{{"text":"{text}"}}]}}'
    )
    if BINDING == "rest":
        return f'{{"message":{message}}}'.encode(), text, rpc_id
    body = (
        f'{{"jsonrpc":"2.0","id":{rpc_id},"method":"SendMessage","params":{{"message":{message}}}}}'
    )
    return body.encode(), text, rpc_id


def check_answer(status: int, body: bytes, text: str, rpc_id: int, mode: str) -> None:
    if status != 200:
        raise CheckError(f"HTTP {status}: {body[:200]!r}")
    answer = json.loads(body)
    if BINDING == "rest":
        answer = {"id": rpc_id, "result": answer}
    if answer.get("id") != rpc_id:
        raise CheckError(f"JSON-RPC id {answer.get('id')!r} != {rpc_id}: {body[:300]!r}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise CheckError(f"no JSON-RPC result: {body[:300]!r}")
    if mode == "json":
        return
    task = result.get("task") or {}
    state = (task.get("status") or {}).get("state")
    if state != COMPLETED:
        raise CheckError(f"task state {state!r}: {body[:300]!r}")
    try:
        echoed = task["artifacts"][0]["parts"][0]["text"]
    except (KeyError, IndexError, TypeError):
        echoed = None
    if echoed != text:
        raise CheckError(f"artifact text {echoed!r} != {text!r}")


# -- raw HTTP/1.1 over asyncio streams ------------------------------------------


#: ``--header``: sent on every request (credentials instead of a client certificate).
HEADERS: dict[str, str] = {}


class RawConnection:
    """One keep-alive HTTP/1.1 connection: send a POST, read the answer."""

    def __init__(self, host: str, port: int, path: str, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        extra = "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
            "Content-Type: application/json\r\nA2A-Version: 1.0\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (and with TLS, complete the handshake: open_connection awaits it)."""
        # The name checked against the server's SANs; asyncio refuses one without TLS.
        name = self.host if self.tls is not None else None
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname=name
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def tls_info(self) -> dict[str, Any] | None:
        """The negotiated protocol and cipher (None over plain TCP or when closed)."""
        ssl_object = self.writer.get_extra_info("ssl_object") if self.writer else None
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return {"version": ssl_object.version(), "cipher": cipher[0] if cipher else None}

    async def aclose(self) -> None:
        """Close, and wait until the transport is gone (TLS: close_notify sent)."""
        writer = self.writer
        self.close()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"%s%d\r\n\r\n%s" % (self.head, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            payload = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            payload = await self._chunked()
        else:
            raise CheckError(f"answer without a length: {head!r}")
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, payload

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        chunks: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def raw_connection(url: str, tls: ssl.SSLContext | None) -> RawConnection:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return RawConnection(parts.hostname or "127.0.0.1", port, parts.path or "/", tls)


async def raw_client(worker: int, conn: RawConnection, mode: str, tag: str, stats: Stats) -> None:
    """A closed loop on ``conn`` (reopened after an error, paying a new handshake)."""
    seq = 0
    try:
        while not stats.done:
            seq += 1
            body, text, rpc_id = request_body(worker, seq, tag)
            started = time.perf_counter()
            try:
                status, payload = await conn.post(body)
                check_answer(status, payload, text, rpc_id, mode)
            except (OSError, asyncio.IncompleteReadError, ValueError, CheckError) as exc:
                stats.error(exc)
                conn.close()  # a fresh connection for the next request
                await asyncio.sleep(0.01)
                continue
            stats.completed_total += 1
            if stats.window:
                stats.latencies.append(time.perf_counter() - started)
    finally:
        conn.close()


# -- httpx, for comparison ------------------------------------------------------------


async def httpx_client(
    worker: int,
    url: str,
    tls: ssl.SSLContext | None,
    mode: str,
    tag: str,
    stats: Stats,
    http2: bool = False,
) -> None:
    import httpx

    headers = {"Content-Type": "application/json", "A2A-Version": "1.0", **HEADERS}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    verify: ssl.SSLContext | bool = tls if tls is not None else True  # True: httpx's default
    version = "HTTP/2" if http2 else "HTTP/1.1"
    async with httpx.AsyncClient(limits=limits, timeout=30.0, verify=verify, http2=http2) as client:
        seq = 0
        while not stats.done:
            seq += 1
            body, text, rpc_id = request_body(worker, seq, tag)
            started = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.http_version != version:
                    raise CheckError(f"answered over {response.http_version}, not {version}")
                check_answer(response.status_code, response.content, text, rpc_id, mode)
            except (httpx.HTTPError, ValueError, CheckError) as exc:
                stats.error(exc)
                await asyncio.sleep(0.01)
                continue
            stats.completed_total += 1
            if stats.window:
                stats.latencies.append(time.perf_counter() - started)


# -- the run ------------------------------------------------------------------------------


def tree_cpu(proc: psutil.Process) -> float:
    """User + sys CPU seconds of ``proc`` and all its descendants (live or reaped)."""
    times = proc.cpu_times()
    total = float(times.user + times.system + times.children_user + times.children_system)
    for child in proc.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (seconds → milliseconds)."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank] * 1000


def my_cpu(me: psutil.Process) -> float:
    return float(sum(me.cpu_times()[:2]))


async def open_all(conns: list[RawConnection], stats: Stats) -> int:
    """Open every connection at once; the number that failed (each counted as an error)."""
    opened = await asyncio.gather(*(c.open() for c in conns), return_exceptions=True)
    failed = [o for o in opened if isinstance(o, BaseException)]
    for exc in failed:
        stats.error(exc)  # that client reconnects on its first request
    return len(failed)


async def connect_all(
    conns: list[RawConnection], server: psutil.Process, me: psutil.Process, stats: Stats
) -> dict[str, Any]:
    """Measure connection set-up, then open ``conns`` for the load (see the module's docstring)."""
    server_cpu0, my_cpu0 = tree_cpu(server), my_cpu(me)
    walls, errors, tls = [], 0, None
    for _ in range(CONNECT_ROUNDS):
        t0 = time.perf_counter()
        errors += await open_all(conns, stats)
        walls.append(time.perf_counter() - t0)
        tls = tls or next((info for c in conns if (info := c.tls_info())), None)
        await asyncio.gather(*(c.aclose() for c in conns))
    await asyncio.sleep(CONNECT_SETTLE_S)
    server_cpu, client_cpu = tree_cpu(server) - server_cpu0, my_cpu(me) - my_cpu0
    errors += await open_all(conns, stats)
    opened = CONNECT_ROUNDS * len(conns)
    return {
        "connect_rounds": CONNECT_ROUNDS,
        "connect_ms": sum(walls) / len(walls) * 1000,
        "connect_server_cpu_ms_per_conn": server_cpu * 1000 / opened,
        "connect_client_cpu_ms_per_conn": client_cpu * 1000 / opened,
        "connect_errors": errors,
        "tls": tls,
    }


async def start_clients(
    args: argparse.Namespace, server: psutil.Process, me: psutil.Process, stats: Stats, tag: str
) -> tuple[list[asyncio.Task[None]], dict[str, Any]]:
    """The client tasks, and (raw client) the connection set-up figures."""
    tls = None
    if args.tls_dir is not None:
        import mtls  # bench/a2a/mtls.py: imports agent-node, so only when asked for

        tls = mtls.client_context(args.tls_dir, certificate=not HEADERS)
    n = args.connections
    if args.client in ("httpx", "httpx2"):
        # httpx connects lazily, inside its first request: no separate set-up figures.
        http2 = args.client == "httpx2"
        tasks = [
            asyncio.create_task(httpx_client(i, args.url, tls, args.check, tag, stats, http2))
            for i in range(n)
        ]
        return tasks, {}
    conns = [raw_connection(args.url, tls) for _ in range(n)]
    setup = await connect_all(conns, server, me, stats)
    tasks = [
        asyncio.create_task(raw_client(i, conn, args.check, tag, stats))
        for i, conn in enumerate(conns)
    ]
    return tasks, setup


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = psutil.Process(args.server_pid)
    me = psutil.Process()
    stats = Stats()
    tag = f"{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    workers, setup = await start_clients(args, server, me, stats, tag)
    await asyncio.sleep(args.warmup)

    # The window opens and closes when the CPU times are read.
    server_cpu0, my_cpu0 = tree_cpu(server), my_cpu(me)
    t0 = time.perf_counter()
    stats.window = True
    await asyncio.sleep(args.duration)
    stats.window = False
    t1 = time.perf_counter()
    server_cpu1, my_cpu1 = tree_cpu(server), my_cpu(me)

    stats.done = True  # each client stops after its answer in flight
    _, pending = await asyncio.wait(workers, timeout=10)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)

    window = t1 - t0
    lat = sorted(stats.latencies)
    requests = len(lat)
    server_cpu = server_cpu1 - server_cpu0
    return {
        "client": args.client,
        "connections": args.connections,
        "warmup_s": args.warmup,
        "window_s": round(window, 4),
        "requests": requests,
        "rps": requests / window,
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_req": server_cpu / requests * 1000 if requests else float("nan"),
        "server_cpu_pct": server_cpu / window * 100,
        "client_cpu_pct": (my_cpu1 - my_cpu0) / window * 100,
        "completed_total": stats.completed_total,
        "errors_window": stats.errors_window,
        "errors_total": stats.errors_total,
        "error_kinds": dict(stats.error_kinds),
        "error_samples": stats.error_samples,
        **setup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the JSON-RPC endpoint")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--check", choices=["task", "json"], default="task")
    parser.add_argument("--client", choices=["raw", "httpx", "httpx2"], default="raw")
    parser.add_argument("--tls-dir", type=Path, help="mutual TLS with mtls.py's files here")
    parser.add_argument(
        "--binding", choices=["jsonrpc", "rest"], default="jsonrpc", help="rest: post to --url"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        help="NAME=VALUE on every request (a bearer token, an API key); with --tls-dir the"
        " client then presents no certificate",
    )
    args = parser.parse_args()
    for header in args.header:
        name, _, value = header.partition("=")
        HEADERS[name] = value
    if (args.tls_dir is not None) != args.url.startswith("https:"):
        parser.error("--tls-dir goes with an https URL, and only with one")
    global BINDING
    BINDING = args.binding
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
