"""The gRPC load client of the A2A SendMessage benchmark (run by send_bench.py, pinned).

    python bench/a2a/grpc_load.py --target 127.0.0.1:P --server-pid PID \
        [--connections 32] [--warmup 2] [--duration 8] [--tls-dir CERTS]

The gRPC twin of ``load.py``, measured the same way (same window, same CPU
sampling, same JSON keys): ``--connections`` clients each keep a channel of
their own (one HTTP/2 connection) and call ``lf.a2a.v1.A2AService/SendMessage``
back to back, closed loop, with ``a2a-version: 1.0`` metadata. Every request
has a unique ``messageId`` and text; every answer is checked: status OK, a
task in ``TASK_STATE_COMPLETED`` whose first artifact's first part is the
echoed text. ``--tls-dir`` speaks mutual TLS with mtls.py's ``client.pem``.

Messages are agent-node's own (``agent_node.a2a.protocol.grpc.messages``), so
the client sends the same bytes to every server. Channels are connected
before the warm-up (no connection set-up figures: gRPC connects lazily).

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import psutil
from load import Stats, my_cpu, percentile, tree_cpu  # this script's directory is on sys.path

from agent_node.a2a.protocol.grpc.messages import SERVICE, message_class

COMPLETED = 3  # TaskState.TASK_STATE_COMPLETED
Request = message_class("SendMessageRequest")
Response = message_class("SendMessageResponse")
METADATA = (("a2a-version", "1.0"),)


class CheckError(Exception):
    """An answer that is not what the benchmark asked for (counted as an error)."""


def channel(target: str, tls_dir: Path | None) -> grpc.aio.Channel:
    if tls_dir is None:
        return grpc.aio.insecure_channel(target)
    import mtls  # bench/a2a/mtls.py

    credentials = grpc.ssl_channel_credentials(
        (tls_dir / mtls.CA).read_bytes(),
        (tls_dir / f"{mtls.CLIENT}-key.pem").read_bytes(),
        (tls_dir / f"{mtls.CLIENT}.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(target, credentials)


def check(answer: Any, text: str) -> None:
    task = answer.task
    if task.status.state != COMPLETED:
        raise CheckError(f"task state {task.status.state}: {str(answer)[:200]}")
    if not task.artifacts or task.artifacts[0].parts[0].text != text:
        raise CheckError(f"no echo of {text!r}: {str(answer)[:300]}")


async def client(worker: int, ch: grpc.aio.Channel, tag: str, stats: Stats) -> None:
    call = ch.unary_unary(
        f"/{SERVICE}/SendMessage",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=Response.FromString,
    )
    seq = 0
    while not stats.done:
        seq += 1
        text = f"echo {tag}-{worker}-{seq}"
        request = Request()
        request.message.message_id = f"m-{tag}-{worker}-{seq}"
        request.message.role = 1  # ROLE_USER
        request.message.parts.add().text = text
        started = time.perf_counter()
        try:
            check(await call(request, metadata=METADATA, timeout=30), text)
        except (grpc.aio.AioRpcError, CheckError) as exc:
            stats.error(exc)
            await asyncio.sleep(0.01)
            continue
        stats.completed_total += 1
        if stats.window:
            stats.latencies.append(time.perf_counter() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = psutil.Process(args.server_pid)
    me = psutil.Process()
    stats = Stats()
    tag = f"{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    channels = [channel(args.target, args.tls_dir) for _ in range(args.connections)]
    await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 30) for c in channels))
    workers = [asyncio.create_task(client(i, c, tag, stats)) for i, c in enumerate(channels)]
    await asyncio.sleep(args.warmup)

    server_cpu0, my_cpu0 = tree_cpu(server), my_cpu(me)
    t0 = time.perf_counter()
    stats.window = True
    await asyncio.sleep(args.duration)
    stats.window = False
    t1 = time.perf_counter()
    server_cpu1, my_cpu1 = tree_cpu(server), my_cpu(me)

    stats.done = True
    _, pending = await asyncio.wait(workers, timeout=10)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(c.close() for c in channels))

    window = t1 - t0
    lat = sorted(stats.latencies)
    requests = len(lat)
    server_cpu = server_cpu1 - server_cpu0
    return {
        "client": "grpc",
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the gRPC server")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--tls-dir", type=Path, help="mutual TLS with mtls.py's files here")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
