"""How much of a node's answer the UI reads.

A node's answer is read up to :data:`MAX_ANSWER_BYTES`, a line of its
streams up to the same: past that it is :class:`TooLarge`, read no
further (a hostile node's 400 MB page grew the UI to 500 MB). Its JSON is
read as I-JSON (:mod:`agent_node.a2a.protocol.strict_json`): ``NaN`` or
``Infinity`` in a row, which the page's own JSON cannot carry, made every
page that merged it fail. How long a call may take in all is
:mod:`.calls`'s to bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from agent_node.a2a.protocol import strict_json
from agent_node.content_length import declared_over
from agent_node.text_lines import LineTooLong, bounded_lines

__all__ = ["MAX_ANSWER_BYTES", "TooLarge", "json_of", "lines"]

#: Most bytes one answer of a node (or one line of its streams) may hold:
#: a page of 200 executions, an execution's view with its state and errors.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class TooLarge(Exception):
    """The node answered more than :data:`MAX_ANSWER_BYTES`: not read further."""


async def json_of(response: httpx.Response) -> Any:
    """The JSON of ``response`` (opened as a stream), read whole; ValueError
    when it is not JSON, :class:`TooLarge` when it is too long to read."""
    if declared_over(response.headers.get("content-length", ""), MAX_ANSWER_BYTES):
        raise TooLarge(f"an answer of more than {MAX_ANSWER_BYTES} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise TooLarge(f"an answer of more than {MAX_ANSWER_BYTES} bytes")
    return strict_json.loads(bytes(body))


async def lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of ``response``'s text, none longer than :data:`MAX_ANSWER_BYTES`
    (:mod:`agent_node.text_lines`)."""
    try:
        async for line in bounded_lines(response.aiter_text(), MAX_ANSWER_BYTES):
            yield line
    except LineTooLong:
        raise TooLarge(f"a line of more than {MAX_ANSWER_BYTES} bytes") from None
