"""What a node's configuration gives its nodes to run with
(:class:`Equipment`): its MCP servers (tool nodes, a model's tools), its
models, its peers (delegate nodes). ``agent-node serve`` runs with it, and
so do ``agent-node resume`` and ``worker`` given the node's ``--config``:
a visit of a served node's execution they finish runs as the node would
run it (without it, they leave such visits to the node: :class:`~agent_node.errors.NotEquipped`).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_node import node_grpc
from agent_node.config import NodeConfig

if TYPE_CHECKING:
    from agent_node.engine.executor import Executor

__all__ = ["Equipment", "delegation_secret"]


@dataclass
class Equipment:
    """A node's executors and the clients they hold, closed by :meth:`aclose`."""

    executors: dict[str, Executor]
    #: The client the peers are called with.
    http: Any
    delegator: Any
    #: The MCP servers' pool (opens nothing until a tool is first called).
    tools: Any
    llm: Any
    #: The TLS context this node calls others with (None without TLS).
    outgoing: Any

    @classmethod
    def of(cls, config: NodeConfig) -> Equipment:
        from agent_node.a2a.peers.client import http_client
        from agent_node.a2a.peers.delegator import PeerDelegator
        from agent_node.a2a.peers.directory import Directory
        from agent_node.a2a.peers.push_receiver import PUSH_PATH
        from agent_node.integrations.llm import LlmClient
        from agent_node.integrations.mcp import McpPool
        from agent_node.integrations.mcp_toolbox import McpToolBox
        from agent_node.nodes.delegate import DelegateExecutor
        from agent_node.nodes.model import ModelExecutor
        from agent_node.nodes.tool import ToolExecutor

        outgoing = config.client_ssl_context()
        http = http_client(
            outgoing,
            timeout=30.0,
            identity_from_cn=config.identity_from_cn,
            bare=config.client_ssl_context(certificate=False),
        )
        directory = Directory(config.peers, http, trust=config.trust_paths())
        delegator = PeerDelegator(
            directory,
            http,
            push_url=config.url + PUSH_PATH,
            secret=delegation_secret(config),
            grpc=functools.partial(node_grpc.peers, config, outgoing),
        )
        pool = McpPool.from_config(config)
        llm = LlmClient(config.models)
        executors: dict[str, Executor] = {
            "delegate": DelegateExecutor(delegator),
            "tool": ToolExecutor(pool),
            "model": ModelExecutor(llm, McpToolBox(pool)),
        }
        return cls(executors, http, delegator, pool, llm, outgoing)

    def use_store(self, store: Any) -> None:
        """Models whose backends say ``shared: true`` share their slots
        through ``store``: the runtime's."""
        self.llm.backends.shared = store.slots

    async def aclose(self) -> None:
        """Close the clients, after the runtime (no node may open a session now)."""
        await self.tools.aclose()
        await self.llm.aclose()
        await self.delegator.aclose()
        await self.http.aclose()


def delegation_secret(config: NodeConfig) -> bytes:
    """The key of this node's delegation tokens: from its TLS key, so replicas
    sharing an identity agree; from its name without TLS (development only)."""
    material = config.name.encode()
    if config.tls is not None:
        material = config.path(config.tls.key).read_bytes()
    return hashlib.sha256(b"agent-node delegation tokens\0" + material).digest()
