"""A real ``agent-node serve`` under a low descriptor limit (RLIMIT_NOFILE
256), flooded with connections that send nothing: it keeps answering, and
its log stays a few lines."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from support.nodes import greeter_config

pytestmark = pytest.mark.slow

DESCRIPTORS = 256
#: What the node holds at most under that limit: a quarter is kept for the rest.
CAP = DESCRIPTORS - DESCRIPTORS // 4
FLOOD = 300


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@contextmanager
def node(directory: Path, limits: str) -> Iterator[tuple[int, Path]]:
    """A node whose requests wait 30 s (no read timeout in the way) within
    ``limits``, started under RLIMIT_NOFILE 256; its port and log."""
    config = greeter_config(directory, f"limits: {{read_timeout: 30, {limits}}}\n")
    log = directory / "node.err"
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(config)]
    with log.open("w") as err:
        process = subprocess.Popen(
            [*command, "--insecure-dev"],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=_low_limit,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on" in first, first + log.read_text()
        yield int(first.split()[-1].rsplit(":", 1)[1].rstrip("/")), log
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


def flood(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        sockets.append(sock)
    time.sleep(0.5)
    return sockets


def closed_by_node(sockets: list[socket.socket]) -> int:
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def healthz(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code


def test_past_its_cap_the_node_closes_its_idlest_connections_and_keeps_answering(
    tmp_path: Path,
) -> None:
    with node(tmp_path, "max_connections: 0") as (port, log), ExitStack() as stack:
        sockets = flood(port, FLOOD, stack)
        assert healthz(port) == 200  # its connection took the place of an idle one
        assert closed_by_node(sockets) >= FLOOD - CAP
        assert healthz(port) == 200
    text = log.read_text()
    assert "Too many open files" not in text and len(text.splitlines()) < 20, text[-3000:]


def test_out_of_descriptors_anyway_the_node_logs_one_line_and_recovers(tmp_path: Path) -> None:
    with node(tmp_path, "max_connections: 1000") as (port, log):  # above what the process has
        with ExitStack() as stack:
            sockets = flood(port, FLOOD, stack)
            assert closed_by_node(sockets) > 0  # refused at once, not left waiting
        time.sleep(0.5)
        assert healthz(port) == 200  # serving again once descriptors are free
    text = log.read_text()
    assert "out of descriptors" in text
    assert "Traceback" not in text and len(text.splitlines()) < 20, text[-3000:]
