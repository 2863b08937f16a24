"""Health probes through a node's life, and Prometheus metrics that move with
the work: real ``agent-node serve`` processes, real uvicorn, real certificates."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from e2e.procs import CLI, FIVE_STEPS, Child, Spawn, child_env, wait_until
from prometheus_client.parser import text_string_to_metric_families
from support.certs import make_certs
from support.nodes import serving_mtls
from support.tls import caller_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

V10 = {"A2A-Version": "1.0"}
D = "spiffe://example.org/agent"


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "agent-node.yaml"
    path.write_text(
        "name: probed\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{tmp_path / 'probed.db'}\n"
        f"skills:\n  - {{id: five, workflow: '{FIVE_STEPS}', default: true}}\n" + extra
    )
    return path


def probe(url: str, path: str) -> tuple[int | None, str]:
    try:
        answer = httpx.get(url + path, timeout=2)
    except httpx.TransportError as exc:
        return None, type(exc).__name__
    return answer.status_code, answer.text


def send(url: str, item: int, blocking: bool = True) -> httpx.Response:
    message = {"messageId": f"m{item}", "role": "ROLE_USER", "parts": [{"data": {"item": item}}]}
    params = {"message": message, "configuration": {"returnImmediately": not blocking}}
    body = {"jsonrpc": "2.0", "id": item, "method": "SendMessage", "params": params}
    return httpx.post(f"{url}/a2a", json=body, headers=V10, timeout=30)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, parsed by Prometheus' own text parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def listening(
    spawn: Spawn, tmp_path: Path, conf: Path, name: str = "node"
) -> tuple[Child, str]:
    env = child_env(tmp_path / "effects.db", step_sleep=0.05)
    node = spawn(name, [*CLI, "serve", "--insecure-dev", "--config", str(conf)], env)
    await wait_until(
        lambda: "listening on" in node.out(), "the node to listen", timeout=30, alive=[node]
    )
    return node, node.out().splitlines()[0].split()[-1]


async def test_probes_say_starting_then_ready_then_draining(spawn: Spawn, tmp_path: Path) -> None:
    conf = config(tmp_path, "telemetry: {drain_seconds: 3}\n")
    store = tmp_path / "probed.db"
    # A first run makes the store; then a writer holds it while the node starts.
    first, url = await listening(spawn, tmp_path, conf, "first")
    first.send(signal.SIGTERM)
    first.wait(30)
    port = int(url.rsplit(":", 1)[1])
    conf.write_text(conf.read_text().replace("port: 0", f"port: {port}"))
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    env = child_env(tmp_path / "effects.db", step_sleep=0.05)
    node = spawn("node", [*CLI, "serve", "--insecure-dev", "--config", str(conf)], env)
    try:
        await wait_until(
            lambda: probe(url, "/healthz")[0] == 200, "alive", timeout=30, alive=[node]
        )
        assert probe(url, "/readyz") == (503, '{"status": "starting"}')
        # No work taken before the engine runs; each binding says so in its shape.
        starting = send(url, 0)
        assert starting.status_code == 503 and starting.headers["retry-after"] == "1"
        error = starting.json()["error"]
        assert error["code"] == -32033 and "starting" in error["message"], error
        rest = httpx.post(f"{url}/a2a/message:send", json={"message": {}}, headers=V10)
        assert rest.status_code == 503 and rest.headers["retry-after"] == "1"
        assert rest.json()["error"]["details"][0]["reason"] == "UNAVAILABLE", rest.text
        assert "listening on" not in node.out()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await wait_until(lambda: probe(url, "/readyz")[0] == 200, "ready", timeout=30, alive=[node])
    assert probe(url, "/readyz") == (200, '{"status": "ready"}')
    assert send(url, 1).json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"

    node.send(signal.SIGTERM)
    asked = time.monotonic()
    await wait_until(lambda: probe(url, "/readyz")[0] == 503, "draining", timeout=5, alive=[node])
    assert probe(url, "/readyz") == (503, '{"status": "draining"}')
    assert probe(url, "/healthz")[0] == 200
    # Still serving while draining: a load balancer's last requests are answered.
    assert send(url, 2).json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert node.wait(30) == 0
    assert time.monotonic() - asked >= 2.5, "the listener closed before the drain ended"
    assert probe(url, "/healthz")[0] is None


async def test_metrics_move_as_work_is_done(spawn: Spawn, tmp_path: Path) -> None:
    plain_port = _free_port()
    conf = config(tmp_path, f"telemetry: {{metrics: {{port: {plain_port}}}}}\n")
    node, url = await listening(spawn, tmp_path, conf)
    before = samples(httpx.get(f"{url}/metrics", timeout=5).text)
    assert (
        value(before, "agent_node_executions_total", workflow="five-steps", status="completed") == 0
    )
    for item in range(3):
        assert send(url, item).status_code == 200
    parked = [send(url, 10 + item, blocking=False) for item in range(2)]
    assert all(r.status_code == 200 for r in parked)
    await wait_until(
        lambda: (
            value(
                samples(httpx.get(f"{url}/metrics", timeout=5).text),
                "agent_node_executions_total",
                workflow="five-steps",
                status="completed",
            )
            == 5
        ),
        "five executions counted",
        timeout=30,
    )
    after = samples(httpx.get(f"{url}/metrics", timeout=5).text)
    assert value(after, "agent_node_executions_total", workflow="five-steps", status="started") == 5
    assert (
        value(after, "agent_node_node_duration_seconds_count", type="python", outcome="completed")
        == 25
    )
    # Visits leased at once by the engine that ran the step before never wait
    # to be claimed; the histogram is there for those that do.
    assert ("agent_node_ready_to_claim_seconds_count", ()) in after
    assert not any(name.endswith("_created") for name, _ in after)
    assert (
        value(after, "agent_node_http_requests_total", method="POST", route="a2a", code="200") == 5
    )
    assert value(after, "agent_node_store_commit_seconds_count") > 0
    assert value(after, "agent_node_store_up") == 1
    assert value(after, "agent_node_work_ready") == 0
    # The plain port serves the same metrics, and nothing else.
    plain = f"http://127.0.0.1:{plain_port}"
    assert "agent_node_executions_total" in httpx.get(f"{plain}/metrics", timeout=5).text
    assert httpx.get(f"{plain}/ops/executions", timeout=5).status_code == 404
    node.send(signal.SIGTERM)
    assert node.wait(30) == 0


def test_metrics_over_mtls_are_for_operators_only(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", "greeter", "bob", "ops")
    extra = f"policy: {{operators: ['{D}/ops']}}\n"
    with serving_mtls(tmp_path, certs, extra) as url:
        with httpx.Client(verify=caller_context(certs, "ops"), timeout=10) as ops:
            scrape = ops.get(f"{url}/metrics")
            assert scrape.status_code == 200
            assert "agent_node_http_requests_total" in scrape.text
        with httpx.Client(verify=caller_context(certs, "bob"), timeout=10) as bob:
            assert bob.get(f"{url}/metrics").status_code == 403
            # Probes need no operator, and say nothing else.
            assert bob.get(f"{url}/healthz").json() == {"status": "ok"}
        with httpx.Client(verify=caller_context(certs, None), timeout=10) as anonymous:
            assert anonymous.get(f"{url}/metrics").status_code == 401
            assert anonymous.get(f"{url}/readyz").json() == {"status": "ready"}


def _free_port() -> int:
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


async def test_json_logs_name_the_execution_node_and_trace(spawn: Spawn, tmp_path: Path) -> None:

    from e2e.procs import E2E

    conf = tmp_path / "noisy.yaml"
    conf.write_text(
        "name: noisy\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{tmp_path / 'noisy.db'}\n"
        f"skills:\n  - {{id: speak, workflow: '{E2E / 'flows.py'}:noisy', default: true}}\n"
    )
    env = child_env(tmp_path / "effects.db", step_sleep=0.0)
    args = [*CLI, "serve", "--insecure-dev", "--log-format", "json", "--config", str(conf)]
    node = spawn("noisy", args, env)
    await wait_until(lambda: "listening on" in node.out(), "listening", timeout=30, alive=[node])
    url = node.out().splitlines()[0].split()[-1]
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {**V10, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    ids = []
    for item in (1, -1):
        message = {
            "messageId": f"j{item}",
            "role": "ROLE_USER",
            "parts": [{"data": {"item": item}}],
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
        answer = httpx.post(f"{url}/a2a", json=body, headers=headers, timeout=30).json()
        ids.append(answer["result"]["task"]["id"])
    node.send(signal.SIGTERM)
    assert node.wait(30) == 0
    lines = [json.loads(line) for line in node.err().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    spoken = [line for line in lines if line["logger"] == "flows.noisy"]
    assert [line["execution_id"] for line in spoken] == ids
    for line in spoken:
        assert line["task_id"] == line["execution_id"]
        assert (line["node"], line["visit"], line["trace_id"]) == ("speak", 1, trace)
    failed = [line for line in lines if line["logger"] == "agent_node.failures"]
    assert [line["execution_id"] for line in failed] == [ids[1]]
    assert "negative items are refused" in failed[0]["error"]


@pytest.mark.parametrize(
    ("problem", "code", "said"),
    [
        ("a field misspelt", 2, "unknown field 'nmae'"),
        ("its port taken", 2, "Address already in use"),
        ("--cert-dir without --identity", 2, "--cert-dir and --identity go together"),
    ],
)
def test_a_start_that_fails_says_why_in_json(
    tmp_path: Path, problem: str, code: int, said: str
) -> None:
    """A log pipeline reading a node's JSON lines sees why it did not start
    (found by an operator's walk: these came as plain text)."""
    conf = config(tmp_path)
    args = [*CLI, "serve", "--insecure-dev", "--log-format", "json", "--config", str(conf)]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if problem == "a field misspelt":
            conf.write_text(conf.read_text().replace("name:", "nmae:"))
        elif problem == "its port taken":
            args += ["--port", str(taken.getsockname()[1])]
        else:
            args += ["--cert-dir", str(tmp_path)]
        env = child_env(tmp_path / "effects.db", step_sleep=0.0)
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == code, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[-1]["level"] == "error", done.stderr
    assert said in lines[-1]["message"], lines
    assert "Traceback" not in done.stderr
