"""Delegation between real node processes over mutual TLS: A's workflow hands a
sub-task to B (and B to C), parks, and resumes once when the result arrives —
by push or by the watchdog — whichever process was SIGKILLed in between."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.procs import CLI, Child, Spawn, child_env, opened, wait_until
from support.certs import make_certs
from support.nodes import ROOT
from support.ports import free_port
from support.tls import caller_context

from agent_node.a2a.peers.delegator import push_token
from agent_node.cli.common import tls_from_cert_dir
from agent_node.config import load_config
from agent_node.node_equipment import delegation_secret
from agent_node.results import to_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

D = "spiffe://example.org/agent"
V10 = {"A2A-Version": "1.0"}
HELLO = ROOT / "examples/hello/workflow.yaml"  # parks on a 500 ms timer, then completes

RELAY = """\
workflow:
  id: relay
  version: "1"
  start: ask
  state_schema:
    type: object
    properties:
      name: {{type: string}}
      text: {{type: string}}
      answer: {{type: object}}
      verdict: {{type: string}}
nodes:
  ask:
    type: delegate
    peer: {peer}
    skill: {skill}
    {message}
    output: answer
    fields: {{verdict: {verdict}}}
    poll: {poll}
    next: done
  done: {{type: end, output: [verdict]}}
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("delegation") / "certs", "a", "b", "c", "alice")


@dataclass
class Net:
    """The nodes of one test: their folders, ports and processes."""

    root: Path
    certs: Path
    spawn: Spawn
    #: Store URLs other than each node's own SQLite file.
    stores: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port(name)}"

    def port(self, name: str) -> int:
        file = self.root / f"{name}.port"
        if not file.exists():
            file.write_text(str(free_port()))
        return int(file.read_text())

    def configure(
        self,
        name: str,
        skills: dict[str, Path],
        peers: list[str],
        extra: str = "",
        *,
        node: str | None = None,
    ) -> Path:
        """``name``'s config; ``node``: the node it is a replica of (its name,
        identity and store), when not itself."""
        lines = [
            f"name: {node or name}",
            f"listen: {{host: 127.0.0.1, port: {self.port(name)}}}",
            f"store: {self.store(node or name)}",
            "push: {allow: [127.0.0.0/8]}",
            "skills:",
            *[f"  - {{id: {skill}, workflow: '{flow}'}}" for skill, flow in skills.items()],
        ]
        if peers:
            lines.append("peers:")
            lines += [
                f"  - {{name: {p}, url: '{self.url(p)}', identity: '{D}/{p}'}}" for p in peers
            ]
        path = self.root / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n" + extra)
        return path

    def relay(
        self,
        name: str,
        peer: str,
        skill: str,
        poll: float = 5.0,
        *,
        as_text: bool = False,
        keep: str = "data.verdict",
    ) -> Path:
        """A workflow that delegates ``skill`` to ``peer``: the name as a data
        part, or ``as_text`` the message's text; ``keep`` is what of the answer
        becomes the verdict."""
        path = self.root / f"{name}-relay.yaml"
        message = "text: '{{ state.text }}'" if as_text else "data: [name]"
        path.write_text(
            RELAY.format(peer=peer, skill=skill, poll=poll, message=message, verdict=keep)
        )
        return path

    async def start(self, name: str, faults: str = "", *, identity: str | None = None) -> Child:
        env = child_env(self.root / "effects", 0.0)
        if faults:
            env["AGENT_NODE_FAULTS"] = faults
        config = self.root / f"{name}.yaml"
        args = [*CLI, "serve", "--config", str(config), "--cert-dir", str(self.certs)]
        child = self.spawn(name, [*args, "--identity", identity or name], env)
        await wait_until(
            lambda: "listening on" in child.out(), f"{name} to listen", timeout=30, alive=[child]
        )
        return child

    def store(self, name: str) -> str:
        return self.stores.get(name, f"sqlite:///{self.root}/{name}.db")


@pytest.fixture
def net(tmp_path: Path, certs: Path, spawn: Spawn) -> Net:
    return Net(tmp_path, certs, spawn)


def client(certs: Path, name: str = "alice") -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=caller_context(certs, name), timeout=30)


async def send(
    net: Net, node: str, name: str, *, blocking: bool = True, trace: str | None = None
) -> dict[str, Any]:
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"name": name}}]}
    params: dict[str, Any] = {"message": message}
    if not blocking:
        params["configuration"] = {"returnImmediately": True}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    headers = {**V10, "traceparent": trace} if trace else V10
    async with client(net.certs) as http:
        answer = (await http.post(f"{net.url(node)}/a2a", json=body, headers=headers)).json()
    assert "result" in answer, answer
    task: dict[str, Any] = answer["result"]["task"]
    return task


async def events_of(url: str, execution_id: str) -> list[Any]:
    async with opened(url) as store:
        return [to_event(e) for e in await store.events(execution_id)]


async def tasks_of(url: str) -> list[Any]:
    async with opened(url) as store:
        return await store.list_executions(limit=1000)


async def finished(url: str, execution_id: str) -> bool:
    async with opened(url) as store:
        record = await store.get(execution_id)
    return record is not None and record.status in {"completed", "failed", "canceled"}


def verdict(task: dict[str, Any]) -> str:
    value: str = task["artifacts"][0]["parts"][0]["data"]["verdict"]
    return value


def kinds(events: list[Any], node: str = "ask") -> list[str]:
    return [e.kind for e in events if e.node == node and e.kind != "node_started"]


# -- the paths ---------------------------------------------------------------------


async def test_a_delegation_resumes_by_push(net: Net) -> None:
    net.configure("b", {"greet": HELLO}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet")}, ["b"])
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Ada Lovelace")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert verdict(task) == "Ada Lovelace is a long name (11 letters)"
    events = await events_of(net.store("a"), task["id"])
    assert kinds(events) == ["wait_started", "delegation_sent", "wait_resolved", "node_completed"]
    sent = next(e for e in events if e.kind == "delegation_sent").data
    assert (sent["peer"], sent["identity"], sent["version"]) == ("b", f"{D}/b", "1.0")
    resolved = next(e for e in events if e.kind == "wait_resolved").data
    assert resolved["payload"]["via"] == "push"
    (b_task,) = await tasks_of(net.store("b"))
    assert b_task.id == sent["task_id"] and b_task.caller == f"{D}/a"
    async with opened(net.store("a")) as store:
        assert await store.delegations(task["id"]) == []  # done with


async def test_a_peer_that_streams_but_does_not_push_is_followed_over_sse(net: Net) -> None:
    config = net.configure("b", {"greet": HELLO}, [])
    config.write_text(
        config.read_text().replace("push: {allow: [127.0.0.0/8]}", "push: {enabled: false}")
    )
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=0.3)}, ["b"])
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Grace")
    assert verdict(task) == "Grace is a short name (5 letters)"
    events = await events_of(net.store("a"), task["id"])
    resolved = next(e for e in events if e.kind == "wait_resolved").data
    assert resolved["payload"]["via"] == "stream"


async def test_lost_pushes_are_made_up_for_by_the_watchdog(net: Net) -> None:
    # A tells B to push to an address where nobody listens: every push is lost.
    dead = free_port()
    net.configure("b", {"greet": HELLO}, [])
    net.configure(
        "a",
        {"relay": net.relay("a", "b", "greet", poll=0.5)},
        ["b"],
        extra=f"public_url: https://127.0.0.1:{dead}\n",
    )
    await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Alan Turing")
    assert verdict(task) == "Alan Turing is a long name (10 letters)"
    events = await events_of(net.store("a"), task["id"])
    assert next(e for e in events if e.kind == "wait_resolved").data["payload"]["via"] == "poll"


async def test_a_chain_of_three_agents(net: Net) -> None:
    net.configure("c", {"greet": HELLO}, [])
    net.configure("b", {"relay": net.relay("b", "c", "greet")}, ["c"])
    net.configure("a", {"relay": net.relay("a", "b", "relay")}, ["b"])
    for name in ("c", "b", "a"):
        await net.start(name)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    task = await send(net, "a", "Barbara Liskov", trace=trace)
    assert verdict(task) == "Barbara Liskov is a long name (13 letters)"
    a_sent = next(
        e for e in await events_of(net.store("a"), task["id"]) if e.kind == "delegation_sent"
    )
    b_task = a_sent.data["task_id"]
    b_sent = next(e for e in await events_of(net.store("b"), b_task) if e.kind == "delegation_sent")
    (c_task,) = await tasks_of(net.store("c"))
    assert c_task.id == b_sent.data["task_id"]
    (b_record,) = await tasks_of(net.store("b"))
    assert (b_record.caller, c_task.caller) == (f"{D}/a", f"{D}/b")
    # One trace across the three agents: each hop a span of the caller's trace.
    (a_record,) = await tasks_of(net.store("a"))
    assert a_record.traceparent == trace
    trace_ids = {r.traceparent.split("-")[1] for r in (a_record, b_record, c_task) if r.traceparent}
    assert trace_ids == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert len({r.traceparent for r in (a_record, b_record, c_task)}) == 3


# -- forged and repeated pushes ------------------------------------------------------


async def test_forged_pushes_are_refused_and_duplicates_do_nothing(net: Net) -> None:
    net.configure("b", {"greet": HELLO}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet")}, ["b"])
    await net.start("b")
    a = await net.start("a")
    task = await send(net, "a", "Edsger", blocking=False)
    async with opened(net.store("a")) as store:
        await wait_until(lambda: _delegated(store, task["id"]), "the delegation", timeout=10)
        (record,) = await store.delegations(task["id"])
    assert "refused a push" not in a.err()
    key = f"{record.execution_id}/{record.node}/{record.visit}"
    config = load_config(net.root / "a.yaml")  # served with --cert-dir/--identity a
    config = config.model_copy(update={"tls": tls_from_cert_dir(net.certs, "a")})
    token = push_token(delegation_secret(config), key)
    forged = {"task": {"id": record.remote_task_id, "status": {"state": "TASK_STATE_FAILED"}}}
    url = f"{net.url('a')}/a2a/push"
    async with client(net.certs, "b") as as_b, client(net.certs, "alice") as as_alice:
        wrong = await as_b.post(url, json=forged, headers={"X-A2A-Notification-Token": "nope"})
        assert wrong.status_code == 403
        stolen = await as_alice.post(url, json=forged, headers={"X-A2A-Notification-Token": token})
        assert stolen.status_code == 403
    assert "refused a push about task" in a.err()
    await wait_until(lambda: finished(net.store("a"), task["id"]), "A to finish", timeout=20)
    events = await events_of(net.store("a"), task["id"])
    assert kinds(events).count("wait_resolved") == 1
    assert events[-1].kind == "execution_completed"  # the forged FAILED changed nothing
    # B's own push, delivered again: the wait is gone, so nothing happens.
    done = {"task": {"id": record.remote_task_id, "status": {"state": "TASK_STATE_COMPLETED"}}}
    async with client(net.certs, "b") as as_b:
        again = await as_b.post(url, json=done, headers={"X-A2A-Notification-Token": token})
    assert again.status_code == 200
    assert len(await events_of(net.store("a"), task["id"])) == len(events)


async def _delegated(store: Any, execution_id: str) -> bool:
    """Whether the execution's delegation has reached the peer (its task known)."""
    return any(d.remote_task_id for d in await store.delegations(execution_id))


# -- crashes -----------------------------------------------------------------------------


async def test_caller_killed_after_parking_sends_after_its_restart(net: Net) -> None:
    """The delegation is recorded (parked, ``sending``) and A dies before any
    send: nothing reached B; after A's restart its watchdog sends it."""
    net.configure("b", {"greet": HELLO}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=1.0)}, ["b"])
    await net.start("b")
    a = await net.start("a", faults="after_commit@ask:1")
    task = await send(net, "a", "Ada Lovelace", blocking=False)
    await wait_until(lambda: a.proc.poll() is not None, "A to be killed", timeout=15)
    assert a.proc.returncode == -signal.SIGKILL
    assert await tasks_of(net.store("b")) == []
    async with opened(net.store("a")) as store:
        (row,) = await store.delegations(task["id"])
    assert (row.state, row.remote_task_id) == ("sending", "")
    await net.start("a")
    await wait_until(lambda: finished(net.store("a"), task["id"]), "A to resume", timeout=30)
    events = await events_of(net.store("a"), task["id"])
    assert kinds(events).count("delegation_sent") == 1
    assert kinds(events).count("wait_resolved") == 1
    assert events[-1].kind == "execution_completed"
    assert len(await tasks_of(net.store("b"))) == 1


async def test_caller_killed_after_the_send_resends_with_the_same_key(net: Net) -> None:
    """B took the task but A died before recording B's answer: after A's
    restart the send is repeated with the same key, and B (which
    deduplicates) answers with the task it has: still one task."""
    net.configure("b", {"greet": HELLO}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=1.0)}, ["b"])
    await net.start("b")
    a = await net.start("a", faults="after_send@ask:1")  # sent, not recorded
    task = await send(net, "a", "Ada Lovelace", blocking=False)
    await wait_until(lambda: a.proc.poll() is not None, "A to be killed", timeout=15)
    assert a.proc.returncode == -signal.SIGKILL
    (b_task,) = await tasks_of(net.store("b"))
    await wait_until(lambda: finished(net.store("b"), b_task.id), "B to finish", timeout=15)
    await net.start("a")
    await wait_until(lambda: finished(net.store("a"), task["id"]), "A to finish", timeout=30)
    events = await events_of(net.store("a"), task["id"])
    assert events[-1].kind == "execution_completed"
    assert [t.id for t in await tasks_of(net.store("b"))] == [b_task.id]
    completed = next(e for e in events if e.kind == "node_completed" and e.node == "ask")
    assert completed.data["output"]["task_id"] == b_task.id
    assert kinds(events).count("delegation_sent") == 1


async def test_worker_killed_mid_task_finishes_after_restart_and_pushes(net: Net) -> None:
    slow = net.root / "slow.yaml"
    slow.write_text(HELLO.read_text().replace("duration: 500ms", "duration: 3s"))
    assert slow.read_text() != HELLO.read_text()
    net.configure("b", {"greet": _with_steps(slow)}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=30.0)}, ["b"])
    b = await net.start("b")
    await net.start("a")
    task = await send(net, "a", "Ada Lovelace", blocking=False)
    async with opened(net.store("a")) as store:
        await wait_until(lambda: _delegated(store, task["id"]), "the delegation", timeout=10)
    b.send(signal.SIGKILL)
    b.wait(10)
    await net.start("b")
    await wait_until(lambda: finished(net.store("a"), task["id"]), "A to resume", timeout=30)
    events = await events_of(net.store("a"), task["id"])
    resolved = next(e for e in events if e.kind == "wait_resolved").data["payload"]
    assert resolved["via"] == "push" and events[-1].kind == "execution_completed"
    assert len(await tasks_of(net.store("b"))) == 1


def _with_steps(flow: Path) -> Path:
    """``flow`` refers to ``steps.py`` next to it: copy that beside the copy."""
    (flow.parent / "steps.py").write_text((HELLO.parent / "steps.py").read_text())
    return flow


# -- cancel and scale -------------------------------------------------------------------

HOLD = """\
workflow:
  id: hold
  version: "1"
  start: hold
  state_schema: {type: object, properties: {name: {type: string}}}
nodes:
  hold: {type: wait, event: never-comes, next: done}
  done: {type: end}
"""


async def test_canceling_a_task_cancels_its_delegation_on_the_peer(net: Net) -> None:
    hold = net.root / "hold.yaml"
    hold.write_text(HOLD)
    net.configure("b", {"hold": hold}, [])
    net.configure("a", {"relay": net.relay("a", "b", "hold", poll=30.0)}, ["b"])
    await net.start("b")
    await net.start("a")
    await cancel_through(net)


async def cancel_through(net: Net) -> None:
    """A delegates to B (which holds its task), then A's caller cancels: B's
    task ends canceled and A's delegation row goes."""
    task = await send(net, "a", "Ada", blocking=False)
    async with opened(net.store("a")) as store:
        await wait_until(lambda: _delegated(store, task["id"]), "the delegation", timeout=10)
    body = {"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task["id"]}}
    async with client(net.certs) as http:
        canceled = (await http.post(f"{net.url('a')}/a2a", json=body, headers=V10)).json()
    assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    (b_task,) = await tasks_of(net.store("b"))
    await wait_until(lambda: finished(net.store("b"), b_task.id), "B's task to end", timeout=15)
    async with opened(net.store("b")) as store:
        record = await store.get(b_task.id)
        assert record is not None and record.status == "canceled"
    async with opened(net.store("a")) as store:
        await wait_until(lambda: _undelegated(store, task["id"]), "the row to go", timeout=10)


async def _undelegated(store: Any, execution_id: str) -> bool:
    return not await store.delegations(execution_id)


@pytest.mark.timeout(240)
async def test_a_thousand_concurrent_delegations_none_lost_or_doubled(net: Net) -> None:
    count = 1000
    net.configure("b", {"greet": HELLO}, [])
    net.configure("a", {"relay": net.relay("a", "b", "greet", poll=2.0)}, ["b"])
    await net.start("b")
    await net.start("a")
    gate = asyncio.Semaphore(64)

    async def one(i: int) -> str:
        async with gate:
            return (await send(net, "a", f"Name {i}", blocking=False))["id"]

    ids = await asyncio.gather(*(one(i) for i in range(count)))
    assert len(set(ids)) == count

    async def all_done() -> bool:
        async with opened(net.store("a")) as store:
            return await store.count_executions(status=["completed"]) == count

    await wait_until(all_done, "every delegation to come back", timeout=180, interval=1.0)
    async with opened(net.store("a")) as store:
        sent: list[str] = []
        for execution_id in ids:
            events = [to_event(e) for e in await store.events(execution_id)]
            assert kinds(events).count("wait_resolved") + _direct(events) == 1, execution_id
            sent.append(_remote_task(events))
            record = await store.get(execution_id)
            assert record is not None and json.loads(record.state)["verdict"].startswith("Name ")
        assert await store.count_executions(status=["failed", "waiting", "running"]) == 0
    b_tasks = await tasks_of(net.store("b"))
    assert len(b_tasks) == count and len(set(sent)) == count
    assert {t.id for t in b_tasks} == set(sent)


def _direct(events: list[Any]) -> int:
    """1 when the peer's answer to the send was final (no wait was needed)."""
    return int("delegation_sent" not in kinds(events))


def _remote_task(events: list[Any]) -> str:
    for event in events:
        if event.kind == "delegation_sent":
            return str(event.data["task_id"])
        if event.kind == "node_completed" and event.node == "ask":
            return str(event.data["output"]["task_id"])
    raise AssertionError("no delegation in the log")


# -- scale-out on PostgreSQL ------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.timeout(180)
async def test_replicas_on_postgresql_share_delegations(net: Net, pg_url: str) -> None:
    """a1 and a2 are one node (identity a) on one database. Peers push to the
    public URL, here a2's: a delegation a1 sent is resumed by a push a2
    receives; killing a1, then a2, loses nothing."""
    net.stores["a"] = pg_url
    slow = _with_steps(net.root / "slow.yaml")
    slow.write_text(HELLO.read_text().replace("duration: 500ms", "duration: 2s"))
    net.configure("b", {"greet": slow}, [])
    relay = net.relay("a", "b", "greet", poll=1.0)
    public = f"public_url: {net.url('a2')}\n"
    net.configure("a1", {"relay": relay}, ["b"], public, node="a")
    net.configure("a2", {"relay": relay}, ["b"], public, node="a")
    await net.start("b")
    a1 = await net.start("a1", identity="a")
    a2 = await net.start("a2", identity="a")
    card = await _card(net, "a1")
    assert card["supportedInterfaces"][0]["url"] == f"{net.url('a2')}/a2a"

    first = [(await send(net, "a1", f"Name {i}", blocking=False))["id"] for i in range(10)]
    async with opened(pg_url) as store:
        await wait_until(lambda: _all_delegated(store, first), "10 delegations", timeout=20)
    a1.send(signal.SIGKILL)  # the sender dies; the pushes go to a2 anyway
    a1.wait(10)
    await wait_until(lambda: _all_finished(pg_url, first), "a2 to resume them", timeout=60)
    vias = await _vias(pg_url, first)
    assert vias == ["push"] * 10

    a1 = await net.start("a1", identity="a")
    a2.send(signal.SIGKILL)  # now the push receiver dies: a1 polls instead
    a2.wait(10)
    second = [(await send(net, "a1", f"Name {i}", blocking=False))["id"] for i in range(5)]
    await wait_until(lambda: _all_finished(pg_url, second), "a1 to poll them", timeout=60)
    assert await _vias(pg_url, second) == ["poll"] * 5
    assert len(await tasks_of(net.store("b"))) == 15


async def _card(net: Net, node: str) -> dict[str, Any]:
    async with client(net.certs) as http:
        card: dict[str, Any] = (
            await http.get(f"{net.url(node)}/.well-known/agent-card.json")
        ).json()
    return card


async def _all_delegated(store: Any, ids: list[str]) -> bool:
    for execution_id in ids:
        if not await store.delegations(execution_id):
            return False
    return True


async def _all_finished(url: str, ids: list[str]) -> bool:
    async with opened(url) as store:
        for execution_id in ids:
            record = await store.get(execution_id)
            if record is None or record.status != "completed":
                return False
    return True


async def _vias(url: str, ids: list[str]) -> list[str]:
    found = []
    async with opened(url) as store:
        for execution_id in ids:
            events = [to_event(e) for e in await store.events(execution_id)]
            assert kinds(events).count("wait_resolved") == 1, execution_id
            resolved = next(e for e in events if e.kind == "wait_resolved")
            found.append(resolved.data["payload"]["via"])
    return found


# -- a peer asks for input ----------------------------------------------------------------

BOOK = ROOT / "examples/greeter/book.py"  # asks "When do you want to go to X?", then books


async def test_a_question_bubbles_up_a_chain_and_the_answer_comes_down(net: Net) -> None:
    net.configure("c", {"book": Path(f"{BOOK}:wf")}, [])
    net.configure("b", {"relay": net.relay("b", "c", "book", as_text=True, keep="text")}, ["c"])
    net.configure("a", {"relay": net.relay("a", "b", "relay", as_text=True)}, ["b"])
    for name in ("c", "b", "a"):
        await net.start(name)
    task = await send_text(net, "a", {"parts": [{"text": "Lisbon"}]})
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    question = task["status"]["message"]["parts"][0]["text"]
    assert question == "When do you want to go to Lisbon?"  # C's question, asked at A

    answer = {"taskId": task["id"], "parts": [{"text": "in May"}]}
    done = await send_text(net, "a", answer)
    if done["status"]["state"] != "TASK_STATE_COMPLETED":
        await wait_until(lambda: finished(net.store("a"), task["id"]), "A to finish", timeout=30)
        done = await get_task(net, "a", task["id"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert verdict(done) == "Booked Lisbon for in May."
    a_events = await events_of(net.store("a"), task["id"])
    assert kinds(a_events).count("delegation_sent") == 1
    assert kinds(a_events).count("delegation_answered") == 1
    (c_task,) = await tasks_of(net.store("c"))
    assert c_task.status == "completed" and len(await tasks_of(net.store("b"))) == 1


LOGIN = """\
workflow:
  id: login
  version: "1"
  start: authorize
  state_schema:
    type: object
    properties:
      text: {type: string}
      reply: {type: string}
nodes:
  authorize:
    type: wait
    auth: "Sign in to {{ state.text }}, then send the token."
    output: reply
    next: done
  done: {type: end, output: [reply]}
"""


async def test_a_peers_request_for_authorization_bubbles_up_and_the_answer_comes_down(
    net: Net,
) -> None:
    """B asks for authorization; A's caller sees AUTH_REQUIRED with B's prompt,
    answers A's task, and the answer reaches B's task (it was a failure before)."""
    login = net.root / "login.yaml"
    login.write_text(LOGIN)
    net.configure("b", {"login": login}, [])
    net.configure("a", {"relay": net.relay("a", "b", "login", as_text=True, keep="text")}, ["b"])
    for name in ("b", "a"):
        await net.start(name)
    task = await send_text(net, "a", {"parts": [{"text": "the mailbox"}]})
    assert task["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
    prompt = task["status"]["message"]["parts"][0]["text"]
    assert prompt == "Sign in to the mailbox, then send the token."

    done = await send_text(net, "a", {"taskId": task["id"], "parts": [{"text": "tok-42"}]})
    if done["status"]["state"] != "TASK_STATE_COMPLETED":
        await wait_until(lambda: finished(net.store("a"), task["id"]), "A to finish", timeout=30)
        done = await get_task(net, "a", task["id"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert verdict(done) == "tok-42"
    a_events = await events_of(net.store("a"), task["id"])
    assert kinds(a_events).count("delegation_answered") == 1
    (b_task,) = await tasks_of(net.store("b"))
    assert b_task.status == "completed"


async def send_text(net: Net, node: str, message: dict[str, Any]) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m", "role": "ROLE_USER", **message}},
    }
    async with client(net.certs) as http:
        answer = (await http.post(f"{net.url(node)}/a2a", json=body, headers=V10)).json()
    assert "result" in answer, answer
    task: dict[str, Any] = answer["result"]["task"]
    return task


async def get_task(net: Net, node: str, task_id: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
    async with client(net.certs) as http:
        answer = (await http.post(f"{net.url(node)}/a2a", json=body, headers=V10)).json()
    task: dict[str, Any] = answer["result"]
    return task


async def test_a_node_stops_on_sigterm_while_a_blocking_send_waits_on_a_peer(net: Net) -> None:
    hold = net.root / "hold.yaml"
    hold.write_text(HOLD)
    net.configure("b", {"hold": hold}, [])
    net.configure("a", {"relay": net.relay("a", "b", "hold", poll=30.0)}, ["b"])
    await net.start("b")
    a = await net.start("a")
    waiting = asyncio.create_task(send(net, "a", "Ada"))  # blocks: B never answers
    async with opened(net.store("a")) as store:
        await wait_until(lambda: _parked(store), "the delegation", timeout=10)
    a.send(signal.SIGTERM)
    assert a.wait(15) == 0, a.describe()  # within the graceful-shutdown bound
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await waiting


async def _parked(store: Any) -> bool:
    return any(r.status == "waiting" for r in await store.list_executions(limit=10))
