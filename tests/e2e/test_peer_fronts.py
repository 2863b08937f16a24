"""A peer behind a front that fails: HTML error pages, 503 with Retry-After.

Real processes over mutual TLS: B (ours) behind :mod:`e2e.flaky_front`, a
reverse proxy holding B's certificate, as a load balancer would. While the
front answers A's sends with HTML error pages, A's delegation stays parked
and then completes, one task at B; a front that never recovers fails A's
task at the delegate node's timeout with an error that names the peer and
what it answered, never an address.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest
from e2e.procs import E2E, Child, Spawn, child_env, opened, wait_until
from e2e.test_delegation import HELLO, Net, send, tasks_of, verdict
from support.certs import make_certs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("fronts") / "certs", "a", "b", "alice")


@pytest.fixture
def net(tmp_path: Path, certs: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, certs, spawn)


async def _behind_front(net: Net, *, fail: int, status: int, timeout: str = "") -> Child:
    """B serving ``greet``, its front on the port A knows as ``b``; A relaying
    to it. The front's log is ``front.jsonl``."""
    upstream = net.port("b-inner")
    config = net.configure("b", {"greet": HELLO}, [], f"public_url: {net.url('b')}\n")
    config.write_text(config.read_text().replace(f"port: {net.port('b')}", f"port: {upstream}"))
    relay = net.relay("a", "b", "greet", poll=0.5)
    if timeout:
        limited = relay.read_text().replace("    poll:", f"    timeout: {timeout}\n    poll:")
        relay.write_text(limited)
    net.configure("a", {"relay": relay}, ["b"])
    await net.start("b")
    front = [sys.executable, str(E2E / "flaky_front.py"), "--port", str(net.port("b"))]
    front += ["--certs", str(net.certs), "--name", "b", "--client", "a"]
    front += ["--upstream", f"https://127.0.0.1:{upstream}", "--fail", str(fail)]
    front += ["--status", str(status), "--log", str(net.root / "front.jsonl")]
    child = net.spawn("front", front, child_env(net.root / "effects", 0.0))
    await wait_until(
        lambda: _listening(net.port("b")),
        "the front to listen",
        timeout=30,
        alive=[child],
    )
    await net.start("a")
    return child


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _front_log(net: Net) -> list[tuple[str | None, int]]:
    path = net.root / "front.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(e["method"], e["status"]) for e in map(json.loads, lines)]


@pytest.mark.parametrize("status", [500, 503])
async def test_error_pages_from_a_front_park_the_delegation_until_the_peer_answers(
    net: Net, status: int
) -> None:
    await _behind_front(net, fail=2, status=status)
    task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
    assert verdict(task) == "Ada Lovelace is a long name (11 letters)"
    sends = [s for m, s in _front_log(net) if m == "SendMessage"]
    assert sends == [status, status, 200]
    (b_task,) = await tasks_of(net.store("b"))  # one task at B for the three sends
    async with opened(net.store("a")) as store:
        events = [e for e in await store.events(task["id"]) if e.kind == "delegation_sent"]
    assert json.loads(events[0].data or "{}")["task_id"] == b_task.id


async def test_a_front_that_never_recovers_fails_the_task_naming_the_peer_not_an_address(
    net: Net,
) -> None:
    await _behind_front(net, fail=1000, status=500, timeout="4s")
    task = await send(net, "a", "Grace")
    assert task["status"]["state"] == "TASK_STATE_FAILED", task
    said = " ".join(p.get("text", "") for p in task["status"]["message"]["parts"])
    assert "peer 'b'" in said and "HTTP 500 (text/html)" in said, said
    assert not re.search(r"https?://|10\.20\.30\.40|127\.0\.0\.1", said), said
    assert len([m for m, _ in _front_log(net) if m == "SendMessage"]) >= 2  # tried again
    assert await tasks_of(net.store("b")) == []
