"""Adapters to the heavy libraries the nodes use (litellm, mcp, httpx),
implementing the protocols the node executors own.

Each adapter imports its library on first use, never at ``import agent_node``:
the factories here are what the composition (:mod:`agent_node.runtime`)
hands the executors, called when a node first needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_node.nodes.http_transport import HttpTransport
    from agent_node.nodes.model_client import ModelClient

__all__ = ["http_transport", "model_client"]


def model_client() -> ModelClient:
    """litellm's client with the default model settings."""
    from agent_node.integrations.llm import LlmClient

    return LlmClient()


def http_transport() -> HttpTransport:
    """httpx's transport for http nodes."""
    from agent_node.integrations.http_client import HttpxTransport

    return HttpxTransport()
