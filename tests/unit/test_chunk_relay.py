"""How a peer's stream events become our chunks (a2a/peers/chunk_relay.py):
one stream per peer artifact under our visit's, append only onto what our
listeners saw opened, whole artifacts not relayed, a peer's text capped, and
what a peer left open closed when its stream ends. A real live channel;
nothing is followed over the network here (the chain test does that)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent_node.a2a.peers import chunk_relay
from agent_node.a2a.peers.chunk_relay import ChunkRelay
from agent_node.store.live import Chunk, Live
from agent_node.store.records import DelegationRecord

ROW = DelegationRecord(
    "exec", "ask", 1, "b", "peer-task", "", "", None, 0.0, 0.0, state="sent", request="{}"
)
OURS = "exec-ask-1"


def update(artifact: str, text: str, append: bool, last: bool = False) -> dict[str, Any]:
    parts = [{"text": text}]
    artifact_json = {"artifactId": artifact, "name": "write", "parts": parts}
    return {"artifactUpdate": {"artifact": artifact_json, "append": append, "lastChunk": last}}


@pytest.fixture
def relayed() -> tuple[ChunkRelay, list[Chunk]]:
    live = Live()
    got: list[Chunk] = []
    live.subscribe("exec", got.append)
    runtime = SimpleNamespace(store=SimpleNamespace(live=live))
    return ChunkRelay(runtime, SimpleNamespace()), got  # type: ignore[arg-type]


def test_a_peer_artifact_becomes_one_stream_under_our_visit(
    relayed: tuple[ChunkRelay, list[Chunk]],
) -> None:
    relay, got = relayed
    relay.relay(ROW, update("p-write-1", "Hel", append=True))  # we never saw it open
    relay.relay(ROW, update("p-write-1", "lo", append=True))
    relay.relay(ROW, update("p-write-1", "", append=True, last=True))
    relay.relay(ROW, update("p-result", "Hello", append=False, last=True))  # whole: not relayed
    assert [(c.stream, c.node, c.text, c.append, c.last) for c in got] == [
        (f"{OURS}/p-write-1", "write", "Hel", False, False),
        (f"{OURS}/p-write-1", "write", "lo", True, False),
        (f"{OURS}/p-write-1", "write", "", True, True),
    ]


def test_what_a_peer_left_open_is_closed_when_its_stream_ends(
    relayed: tuple[ChunkRelay, list[Chunk]],
) -> None:
    relay, got = relayed
    relay.relay(ROW, update("p-write-1", "half", append=False))
    relay.ended(ROW)
    assert [(c.text, c.append, c.last) for c in got] == [("half", False, False), ("", True, True)]


def test_a_peer_s_text_is_cut_at_the_cap(
    relayed: tuple[ChunkRelay, list[Chunk]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_relay, "MAX_RELAYED", 10)
    relay, got = relayed
    relay.relay(ROW, update("p-write-1", "12345", append=False))
    relay.relay(ROW, update("p-write-1", "678901", append=True))  # 11: over
    relay.relay(ROW, update("p-write-1", "more", append=True))  # dropped
    assert [(c.text, c.append, c.last) for c in got] == [("12345", False, False), ("", True, True)]
    relay.relay(ROW, update("p-write-1", "again", append=False))  # a restart opens it anew
    assert (got[-1].text, got[-1].append, got[-1].last) == ("again", False, False)


def test_nothing_is_relayed_while_nobody_watches() -> None:
    live = Live()
    runtime = SimpleNamespace(store=SimpleNamespace(live=live))
    relay = ChunkRelay(runtime, SimpleNamespace())  # type: ignore[arg-type]
    relay.relay(ROW, update("p-write-1", "unseen", append=False))
    assert live.writing("exec") == 0
