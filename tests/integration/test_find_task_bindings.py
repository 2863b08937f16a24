"""A delegation whose send's answer was lost finds the peer's task by the
``contextId`` its message named (``ListTasks``), on every binding of A2A 1.0
a peer may offer alone, and cancels it: our own node serving only JSON-RPC,
only HTTP+JSON (``GET /tasks?contextId=…``) or only gRPC, in this process
over loopback (real uvicorn, our gRPC server, a real store). A message the
peer never had finds nothing, and nothing is sent that could make it (before:
over HTTP+JSON and gRPC nothing was looked up, and the peer's task ran on).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agent_node import node_grpc
from agent_node.a2a.peers.delegator import PeerDelegator
from agent_node.a2a.peers.directory import Directory
from agent_node.config import PeerConfig, load_config
from agent_node.node import AgentNode
from agent_node.node_parts import NodeParts
from agent_node.nodes.delegate import Delegation
from agent_node.store.records import DelegationRecord
from agent_node.transport import uvicorn_config

pytest.importorskip("grpc")

HOLD = """\
workflow:
  id: hold
  version: "1"
  start: hold
  state_schema: {type: object, properties: {}}
nodes:
  hold: {type: wait, event: never-comes, next: done}
  done: {type: end}
"""


@dataclass
class Peer:
    """Our node F, as its caller A reaches it."""

    parts: NodeParts
    delegator: PeerDelegator

    async def tasks(self) -> dict[str, str]:
        """F's tasks (executions) and their status."""
        listed = await self.parts.runtime.store.list_executions(limit=10)
        return {record.id: record.status for record in listed}


@asynccontextmanager
async def our_node(tmp_path: Path, binding: str) -> AsyncIterator[Peer]:
    """F serving ``binding`` alone ("jsonrpc", "rest" or "grpc"), plain on
    loopback; A's delegator configured to call it."""
    (tmp_path / "hold.yaml").write_text(HOLD)
    (tmp_path / "f.yaml").write_text(
        "name: f\nlisten: {host: 127.0.0.1, port: 1}\n"
        f"store: sqlite:///{tmp_path}/f.db\nskills:\n  - {{id: hold, workflow: hold.yaml}}\n"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    grpc_port = None
    config = load_config(tmp_path / "f.yaml").with_overrides(port=port)
    if binding == "grpc":
        grpc_server, grpc_port = node_grpc.bind(config.with_overrides(grpc_port=0))
        config = config.with_overrides(grpc_port=grpc_port, bindings=[])
    else:
        grpc_server = None
        config = config.with_overrides(bindings=[binding])
    parts = NodeParts.assemble(config, AgentNode(config).load_workflows(), secure=False)
    await parts.start()
    server = uvicorn.Server(uvicorn_config(parts.app, None, config.limits))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    client = httpx.AsyncClient()
    endpoints = [f"grpc://127.0.0.1:{grpc_port}"] if grpc_port else []
    url = f"http://127.0.0.1:{port}"
    directory = Directory([PeerConfig(name="f", url=url, endpoints=endpoints)], client)
    delegator = PeerDelegator(
        directory, client, push_url=None, secret=b"s", grpc=lambda: node_grpc.peers(config, None)
    )
    try:
        while not server.started:
            assert not serving.done(), "F did not start"
            await asyncio.sleep(0.01)
        parts.health.serving()
        if grpc_server is not None:
            await node_grpc.serve(grpc_server, parts.grpc)
        yield Peer(parts, delegator)
    finally:
        await delegator.aclose()
        await client.aclose()
        if grpc_server is not None:
            await grpc_server.stop(0)
        server.should_exit = True
        await serving
        sock.close()
        await parts.close()


def delegation_row(skill: str = "hold") -> DelegationRecord:
    """A row of A's, as its delegate node writes it before anything is sent."""
    key = f"e-{uuid.uuid4().hex[:8]}/hand/1"
    request = Delegation(
        peer="f",
        skill=skill,
        tag=None,
        text="hi",
        data=None,
        idempotency_key=key,
        push=False,
        context=str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
    )
    now = time.time()
    execution_id = key.split("/")[0]
    return DelegationRecord(
        execution_id,
        "hand",
        1,
        peer="f",
        remote_task_id="",
        endpoint="",
        version="",
        identity=None,
        sent_at=now,
        next_poll_at=now,
        state="sending",
        request=request.to_json(),
    )


DIALECTS = {"jsonrpc": "1.0", "rest": "HTTP+JSON 1.0", "grpc": "GRPC 1.0"}


@pytest.mark.parametrize("binding", list(DIALECTS))
async def test_the_peer_s_task_is_found_by_its_context_and_canceled(
    tmp_path: Path, binding: str
) -> None:
    async with our_node(tmp_path, binding) as f:
        # A message F never had: nothing found, nothing made.
        assert await f.delegator.find_task(delegation_row()) is None
        assert await f.tasks() == {}
        row = delegation_row()
        receipt = await f.delegator.send(row)  # F makes the task; say A lost the answer
        assert receipt.version == DIALECTS[binding]
        assert await f.tasks() == {receipt.task_id: "waiting"}
        found: Any = await f.delegator.find_task(row)
        assert found is not None and found["id"] == receipt.task_id
        assert found["contextId"] == Delegation.from_json(row.request or "").context
        assert (row.peer, row.version) == ("f", DIALECTS[binding])
        await f.delegator.cancel_task(replace(row, remote_task_id=found["id"]))
        assert await f.tasks() == {receipt.task_id: "canceled"}
