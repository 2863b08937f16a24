"""Reading a request's JSON body within limits, for every binding that takes JSON.

* ``Content-Type`` is ``application/json`` (or, where the binding says so,
  ``application/a2a+json``; parameters allowed), checked
  before the body is read: else ContentTypeNotSupported.
* The body fits :attr:`Limits.max_body_bytes`: ``Content-Length`` first, then
  counted while it streams, so a false or missing length cannot bypass it
  (:class:`BodyTooLarge`, answered with HTTP 413).
* The body is UTF-8 JSON without ``NaN``, infinities or unpaired surrogates
  (ParseError), nested at most :attr:`Limits.max_depth` levels (InvalidRequest).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from agent_node.a2a.protocol import strict_json
from agent_node.a2a.protocol.errors import ContentTypeNotSupported, InvalidRequest, ParseError
from agent_node.a2a.server.limits import Limits, depth
from agent_node.content_length import declared_over

__all__ = ["JSON_ONLY", "BodyTooLarge", "read_json"]

#: What JSON-RPC takes.
JSON_ONLY = ("application/json",)


class BodyTooLarge(InvalidRequest):
    """-32600 InvalidRequest, sent with HTTP 413."""


async def read_json(
    request: Request, limits: Limits, media_types: tuple[str, ...] = JSON_ONLY
) -> Any:
    """The request's JSON body (see the module doc for what is refused);
    ``media_types``: the ``Content-Type`` values taken."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in media_types:
        raise ContentTypeNotSupported(
            f"Content-Type must be {' or '.join(media_types)}, not {media_type[:100] or 'none'!r}"
        )
    payload = _parse(await _read_body(request, limits.max_body_bytes))
    if depth(payload) > limits.max_depth:
        raise InvalidRequest(f"request nested deeper than {limits.max_depth} levels")
    return payload


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    # isascii: str.isdigit() holds for '²', which int() refuses; 30 digits
    # are past any limit (and int() refuses thousands of them).
    if declared_over(declared, limit):
        raise BodyTooLarge(f"request body too large ({declared[:30]} bytes, limit {limit})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body too large ({size} bytes, limit {limit})")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> Any:
    try:
        return strict_json.loads(body.decode("utf-8"))
    except strict_json.NestedTooDeeply:
        raise InvalidRequest("request nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and UnicodeEncodeError among them
        raise ParseError("invalid JSON") from None
