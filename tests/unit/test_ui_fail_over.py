"""Which node the UI's calls go to when the one asked cannot answer
(agent_node/ui/calls.py, agent_node/ui/replicas.py), against fake nodes
(``httpx.MockTransport``): replicas are the nodes whose answers named one
store over the same node's certificate (here plain HTTP: none), all given
by the operator or all peers of a configuration, tried in the order
given; a read goes on past a node that is down or stopping (503); a write
only past one it certainly did not reach."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agent_node.ui.calls import Calls, NodeDown
from agent_node.ui.replicas import Replicas
from agent_node.ui.targets import Network, Target

KEYS = ("r1", "n2", "r3", "r4")
STORES = {"r1": "sqlite:a", "n2": "sqlite:b", "r3": "sqlite:a", "r4": "sqlite:a"}
TARGETS = {key: Target(key, f"http://127.0.0.1:{47100 + n}") for n, key in enumerate(KEYS)}


class Nodes:
    """Fake nodes: each answers its store, unless told to fail a certain way."""

    def __init__(self) -> None:
        self.failing: dict[str, Exception | int] = {}
        self.seen: list[tuple[str, str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        key = KEYS[(request.url.port or 0) - 47100]
        self.seen.append((key, request.method, request.url.path))
        failing = self.failing.get(key)
        if isinstance(failing, Exception):
            raise failing
        if failing is not None:
            return httpx.Response(failing, json={"error": {"message": "stopping"}})
        return httpx.Response(200, json={"node": key, "store": STORES[key]})

    def reached(self, method: str) -> list[str]:
        return [key for key, m, _ in self.seen if m == method]


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Calls, Nodes]]:
    fake = Nodes()
    calls = Calls(Network(dict(TARGETS), None))
    await calls.http.aclose()
    calls.http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    for target in TARGETS.values():  # as the nodes view asks each
        await calls.get(target, "/ops/node", fall_over=False)
    fake.seen.clear()
    try:
        yield calls, fake
    finally:
        await calls.aclose()


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("Connection refused")


def test_replicas_are_the_nodes_that_named_one_store_in_the_order_given() -> None:
    replicas = Replicas(TARGETS)
    r1, n2, r3, r4 = TARGETS.values()
    assert replicas.of(r1) == []  # nothing said yet
    for key, store in STORES.items():
        replicas.learn(TARGETS[key], {"store": store}, None)
    replicas.learn(Target("x", "http://127.0.0.1:47199"), {"store": "sqlite:a"}, None)  # not ours
    replicas.learn(r1, {"error": {"message": "no store named"}}, None)
    assert (replicas.of(r1), replicas.of(r4), replicas.of(n2)) == ([r3, r4], [r1, r3], [])
    replicas.learn(r3, {"store": "sqlite:b"}, None)  # its latest word counts
    assert (replicas.of(r1), replicas.of(n2)) == ([r4], [r3])


def test_only_the_same_node_s_certificate_and_the_operator_s_word_make_replicas() -> None:
    r1, n2, r3, r4 = TARGETS.values()
    peer = Target("peer", "http://127.0.0.1:47198", peer=True)  # a configuration's peer only
    replicas = Replicas({**TARGETS, "peer": peer})
    replicas.learn(r1, {"store": "sqlite:a"}, "spiffe://example.org/agent/a")
    replicas.learn(r3, {"store": "sqlite:a"}, "spiffe://example.org/agent/a")
    replicas.learn(r4, {"store": "sqlite:a"}, "spiffe://example.org/agent/other")
    replicas.learn(peer, {"store": "sqlite:a"}, "spiffe://example.org/agent/a")
    assert (replicas.of(r1), replicas.of(r4), replicas.of(peer)) == ([r3], [], [])
    assert replicas.shown(r1) == replicas.shown(r3)
    assert len({replicas.shown(t) for t in (r1, r4, peer)}) == 3
    assert replicas.shown(n2) is None  # it never said


async def test_a_read_goes_on_past_nodes_down_or_stopping(nodes: tuple[Calls, Nodes]) -> None:
    calls, fake = nodes
    fake.failing = {"r1": httpx.ReadTimeout("slow"), "r3": 503}
    reply = await calls.get(TARGETS["r1"], "/ops/executions")
    assert reply.ok and reply.by == TARGETS["r4"]
    assert fake.reached("GET") == ["r1", "r3", "r4"]


async def test_a_read_no_replica_can_answer_fails_as_the_node_asked(
    nodes: tuple[Calls, Nodes],
) -> None:
    calls, fake = nodes
    r1 = TARGETS["r1"]
    fake.failing = {"r1": 503, "r3": refused(), "r4": refused()}
    stopping = await calls.get(r1, "/ops/executions")
    assert (stopping.status, stopping.by) == (503, r1)
    assert fake.reached("GET") == ["r1", "r3", "r4"]
    fake.failing["r1"] = refused()
    with pytest.raises(NodeDown, match=r"^r1: Connection refused") as down:
        await calls.get(r1, "/ops/executions")
    assert down.value.sent is False


async def test_a_look_at_a_node_itself_and_a_node_of_no_known_store_stay_theirs(
    nodes: tuple[Calls, Nodes],
) -> None:
    calls, fake = nodes
    fake.failing = {"r1": refused(), "n2": refused()}
    with pytest.raises(NodeDown):
        await calls.get(TARGETS["r1"], "/ops/node", fall_over=False)
    with pytest.raises(NodeDown):  # no other node named n2's store
        await calls.get(TARGETS["n2"], "/ops/executions")
    assert fake.reached("GET") == ["r1", "n2"]


async def test_a_write_goes_to_a_replica_only_when_it_certainly_was_not_sent(
    nodes: tuple[Calls, Nodes],
) -> None:
    calls, fake = nodes
    r1 = TARGETS["r1"]
    fake.failing = {"r1": refused()}
    done = await calls.post(r1, "/ops/executions/e/cancel", {})
    answered = await calls.send_message(r1, "e", "yes")
    assert (done.by, answered.by) == (TARGETS["r3"], TARGETS["r3"])
    assert fake.reached("POST") == ["r1", "r3", "r1", "r3"]
    sent_maybe = [
        httpx.ReadTimeout("no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ]
    for failing in sent_maybe:
        fake.seen.clear()
        fake.failing = {"r1": failing}
        with pytest.raises(NodeDown) as down:
            await calls.post(r1, "/ops/executions/e/cancel", {})
        assert down.value.sent is True
        assert fake.reached("POST") == ["r1"]
    fake.seen.clear()
    fake.failing = {"r1": 503}
    stopping = await calls.send_message(r1, "e", "yes")
    assert (stopping.status, fake.reached("POST")) == (503, ["r1"])
