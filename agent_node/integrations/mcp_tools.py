"""MCP tools as agent-node sees them: a tool as listed, a call's result.

Apart from the pool because it is the translation of the SDK's tool types
(``mcp_types``) into ours, used by the pool and its sessions (which cache
their servers' listings) alike. The SDK's types are imported where a value
is translated, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_node.nodes.tool import ToolResult

if TYPE_CHECKING:
    from mcp_types import CallToolResult, ContentBlock

__all__ = ["ToolInfo", "tool_result"]


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as its server lists it."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


def tool_result(result: CallToolResult) -> ToolResult:
    """A call's result as nodes see it: its content as text, its structured
    content, whether the tool answered with an error, and its images, audio
    and binary resources as A2A file parts (the text saying where each was)."""
    text = "\n".join(_text(block) for block in result.content)
    files = tuple(part for block in result.content if (part := _file(block)) is not None)
    return ToolResult(text, result.structured_content, bool(result.is_error), files)


def _text(block: ContentBlock) -> str:
    """A content block as text: its text, else a short placeholder."""
    from mcp_types import EmbeddedResource, ResourceLink, TextContent, TextResourceContents

    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource):
        inner = block.resource
        return inner.text if isinstance(inner, TextResourceContents) else f"[resource {inner.uri}]"
    if isinstance(block, ResourceLink):
        return f"[resource {block.uri}]"
    return f"[{block.type} {getattr(block, 'mime_type', '')}]".replace(" ]", "]")


def _file(block: ContentBlock) -> dict[str, str] | None:
    """A block holding bytes as an A2A 1.0 file part (its JSON), else None."""
    from mcp_types import AudioContent, BlobResourceContents, EmbeddedResource, ImageContent

    if isinstance(block, ImageContent | AudioContent):
        return {"raw": block.data, "mediaType": block.mime_type}
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, BlobResourceContents):
        inner = block.resource
        part = {"raw": inner.blob, "mediaType": inner.mime_type or "application/octet-stream"}
        name = str(inner.uri).rstrip("/").rpartition("/")[2]
        return {**part, "filename": name} if name else part
    return None
