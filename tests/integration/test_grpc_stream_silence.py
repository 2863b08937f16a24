"""A peer's gRPC stream (``SubscribeToTask``) that goes silent is closed
after ``silence`` seconds, as the HTTP bindings' streams are (a transient
failure: the watchdog polls the task and follows it again); one that keeps
sending is kept. Against our real gRPC server on loopback whose handler
streams the task and then stalls — sends nothing more and never ends, as a
peer or a network that hangs (before: no deadline, and such a stream was
followed for good)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

pytest.importorskip("grpc")

from support.fake_handler import FakeHandler

from agent_node.a2a.peers.calls import STREAM_SILENCE
from agent_node.a2a.peers.discovery import PeerCard
from agent_node.a2a.peers.grpc_calls import GrpcPeers
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.a2a.protocol.models import (
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
    TaskStatus,
)
from agent_node.a2a.server.grpc.server import bind, serve_service, stop
from agent_node.a2a.server.grpc.service import A2AService
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.limits import Limits


class Streaming(FakeHandler):
    """Streams task ``t1`` once, then one status update every ``every``
    seconds (``updates`` of them; the last one terminal), then nothing more
    and no end unless ``ends``. ``closed`` is set once its stream is closed."""

    def __init__(self, updates: int = 0, every: float = 0.0, *, ends: bool = False) -> None:
        super().__init__()
        self.tasks.update(FakeHandler.with_working_task().tasks)
        self.updates, self.every, self.ends = updates, every, ends
        self.closed = asyncio.Event()

    async def subscribe_to_task(
        self, request: SubscribeToTaskRequest, ctx: CallContext
    ) -> AsyncIterator[StreamResponse]:
        return self._events(request.id)

    async def _events(self, task_id: str) -> AsyncIterator[StreamResponse]:
        try:
            task = self._task(task_id)
            yield StreamResponse(task=task)
            for n in range(self.updates):
                await asyncio.sleep(self.every)
                last = n == self.updates - 1
                state = TaskState.COMPLETED if last else TaskState.WORKING
                status = TaskStatus(state=state)
                update = {"taskId": task.id, "contextId": task.context_id, "status": status}
                yield StreamResponse.model_validate({"statusUpdate": update})
            if not self.ends:
                await asyncio.Event().wait()  # stalled: nothing more, no end
        finally:
            self.closed.set()


def card(port: int) -> PeerCard:
    endpoint = f"grpc://127.0.0.1:{port}"
    return PeerCard(
        name="b",
        base_url="http://127.0.0.1:1",
        card={},
        endpoint=endpoint,
        version="1.0",
        identity=None,
        etag=None,
        fetched_at=0,
        expires_at=0,
        signed_by=None,
        card_url=endpoint,
        binding="GRPC",
    )


async def _followed(handler: Streaming, silence: float) -> tuple[list[str], PeerError | None]:
    """The states a subscription to ``t1`` streamed, and how it failed."""
    server, port = bind("127.0.0.1", 0, Limits())
    await serve_service(server, A2AService(handler, capabilities={"streaming": True}))
    peers = GrpcPeers(None, None)
    states: list[str] = []
    try:
        async for event, _ in peers.subscribe(card(port), "t1", silence=silence):
            task = event.get("task") or event["statusUpdate"]
            states.append(task["status"]["state"])
    except PeerError as exc:
        return states, exc
    finally:
        await peers.aclose()
        await stop(server, 0)
    return states, None


async def test_a_stream_silent_past_its_deadline_is_closed() -> None:
    handler = Streaming()
    began = time.monotonic()
    states, failed = await _followed(handler, silence=0.3)
    assert states == ["TASK_STATE_WORKING"]
    assert failed is not None and failed.transient
    assert "sent nothing on its SubscribeToTask stream for 0.3 s" in str(failed)
    assert time.monotonic() - began < 5
    await asyncio.wait_for(handler.closed.wait(), 5)  # the peer saw it go


async def test_a_stream_that_keeps_sending_is_kept_past_the_deadline() -> None:
    handler = Streaming(updates=6, every=0.1, ends=True)  # 0.6 s, none 0.3 s apart
    states, failed = await _followed(handler, silence=0.3)
    assert failed is None
    expected: Sequence[str] = ["TASK_STATE_WORKING"] * 6 + ["TASK_STATE_COMPLETED"]
    assert states == expected


def test_the_deadline_is_the_http_bindings() -> None:
    import inspect

    default = inspect.signature(GrpcPeers.subscribe).parameters["silence"].default
    assert default == STREAM_SILENCE
