"""Reading a peer's event stream and answers: lines however the bytes are
cut, events and lines within the answer cap, JSON as I-JSON takes it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_node.a2a.peers import calls
from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.a2a.protocol import strict_json

TEXT = "data: a\r\n\r\ndata: b\rdata: c\n\nx\r\ny\rz"


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, *pieces: bytes) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


async def test_lines_are_the_same_however_the_bytes_are_cut() -> None:
    """A CRLF cut between two reads is one line end, not two (an empty line
    would end an SSE event early)."""
    expected = TEXT.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    shuffled = random.Random(7)
    for _ in range(300):
        cuts = sorted(shuffled.sample(range(1, len(TEXT)), shuffled.randint(0, 10)))
        pieces = [TEXT[i:j].encode() for i, j in zip([0, *cuts], [*cuts, len(TEXT)], strict=True)]
        response = httpx.Response(200, stream=_Pieces(*pieces))
        assert [line async for line in calls._lines(response)] == expected, pieces


async def test_a_line_past_the_cap_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "MAX_ANSWER_BYTES", 1000)
    response = httpx.Response(200, stream=_Pieces(b"data: ok\n", *([b"x" * 300] * 10)))
    read: list[str] = []
    with pytest.raises(PeerError, match="a streamed line of more than 1000 bytes"):
        async for line in calls._lines(response):
            read.append(line)
    assert read == ["data: ok"]


async def test_an_event_past_the_cap_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "MAX_ANSWER_BYTES", 1000)
    many = b"".join([b"data: " + b"y" * 90 + b"\n"] * 20)  # no blank line: one event
    response = httpx.Response(200, stream=_Pieces(b'data: {"a": 1}\n\n', many))
    read: list[dict[str, object]] = []
    with pytest.raises(PeerError, match="a streamed event of more than 1000 bytes"):
        async for message in calls._messages(response):
            read.append(message)
    assert read == [{"a": 1}]


async def test_a_stream_event_with_a_task_no_delegation_can_follow_ends_it() -> None:
    card = PeerCard(
        name="p",
        base_url="http://peer.test",
        card={},
        endpoint="http://peer.test/a2a",
        version="1.0",
        identity=None,
        etag=None,
        fetched_at=0,
        expires_at=0,
        signed_by=None,
        card_url="http://peer.test/.well-known/agent-card.json",
    )
    events = (
        b'data: {"jsonrpc":"2.0","id":1,"result":{"task":{"id":"t","status":{"state":"x"}}}}\n\n'
        b'data: {"jsonrpc":"2.0","id":1,"result":{"task":{"id":7,"status":{}}}}\n\n'
    )
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Pieces(events)
    )
    read = []
    with pytest.raises(PeerError, match="SubscribeToTask with a task whose id is not a string"):
        async for event in calls._events(card, response):
            read.append(event)
    assert [e["task"]["id"] for e in read] == ["t"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"x": NaN}', "NaN is not JSON"),
        ('{"x": -Infinity}', "-Infinity is not JSON"),
        ('{"x": 1e999}', "1e999 is out of range"),
        ('{"x": "\\ud800"}', "surrogate"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_strict_json_refuses_what_i_json_does_not_allow(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        strict_json.loads(text)
    assert strict_json.loads('{"x": [1, 2.5, "\\u00e9"]}') == {"x": [1, 2.5, "é"]}
