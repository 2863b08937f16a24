"""Bounds on one A2A request, enforced before its handler runs.

The bounds are :class:`agent_node.config.Limits` (the ``limits:`` section
of ``agent-node.yaml``): what a client sends that exceeds one gets a clear
JSON-RPC error (or HTTP 413), and never reaches the task service.
"""

from __future__ import annotations

from typing import Any

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import Part, SendMessageRequest
from agent_node.config import Limits

__all__ = ["DEFAULT_LIMITS", "Limits", "check_message", "depth"]


DEFAULT_LIMITS = Limits()


def check_message(request: SendMessageRequest, limits: Limits) -> None:
    parts = request.message.parts
    if len(parts) > limits.max_parts:
        raise InvalidParams(f"message.parts: {len(parts)} parts, limit {limits.max_parts}")
    for index, part in enumerate(parts):
        size = part_bytes(part)
        if size > limits.max_part_bytes:
            raise InvalidParams(
                f"message.parts.{index}: {size} bytes, limit {limits.max_part_bytes}"
            )


def part_bytes(part: Part) -> int:
    if part.text is not None:
        return len(part.text.encode("utf-8"))
    if part.raw is not None:
        return len(part.raw.rstrip("=")) * 3 // 4
    return 0


def depth(payload: Any) -> int:
    """The nesting depth of a parsed document (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(payload, 1)] if isinstance(payload, dict | list) else []
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
