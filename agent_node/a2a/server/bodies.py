"""Reading a request's JSON body within limits, for every binding that takes JSON.

* ``Content-Type`` is ``application/json`` (or, where the binding says so,
  ``application/a2a+json``; parameters allowed), checked
  before the body is read: else ContentTypeNotSupported.
* The body comes as it is: a ``Content-Encoding`` other than ``identity``
  is :class:`EncodingNotSupported` (HTTP 415 with ``Accept-Encoding:
  identity``, RFC 7694), checked before the body is read (before: a gzip
  body was read as JSON). Choice: refused, not decoded. No A2A client
  compresses its requests (the official SDKs do not), a body is at most
  :attr:`Limits.max_body_bytes` anyway, and decoding would take a
  decompression bomb's guard on the edge for nothing.
* The body fits :attr:`Limits.max_body_bytes`: ``Content-Length`` first, then
  counted while it streams, so a false or missing length cannot bypass it
  (:class:`BodyTooLarge`, answered with HTTP 413).
* The body is UTF-8 JSON without ``NaN``, infinities or unpaired surrogates
  (ParseError), nested at most :attr:`Limits.max_depth` levels (InvalidRequest).
* The request object names no key twice (InvalidRequest): JSON readers
  differ on which one counts (Python's takes the last, others the first),
  so a gateway in front could route or authorize one method while this
  node served another (:func:`_unique_keys`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from agent_node.a2a.protocol import strict_json
from agent_node.a2a.protocol.errors import (
    A2AError,
    ContentTypeNotSupported,
    InvalidRequest,
    ParseError,
)
from agent_node.a2a.server.limits import Limits, depth
from agent_node.content_length import declared_over

__all__ = ["JSON_ONLY", "BodyTooLarge", "EncodingNotSupported", "read_json", "refused_with"]

#: What JSON-RPC takes.
JSON_ONLY = ("application/json",)


#: A request object with more keys than this is checked for a key named
#: twice by a second parse, not by looking for each of its keys in the text.
_FEW_KEYS = 8


class BodyTooLarge(InvalidRequest):
    """-32600 InvalidRequest, sent with HTTP 413."""


class EncodingNotSupported(ContentTypeNotSupported):
    """-32005 ContentTypeNotSupported for a body sent with a ``Content-Encoding``,
    sent with HTTP 415 and ``Accept-Encoding: identity`` (RFC 7694 §3)."""


def refused_with(exc: A2AError) -> tuple[int, dict[str, str]] | None:
    """The HTTP status and headers every binding answers a body refused
    here with, when they are not the error's own: 413 for a body too large,
    415 for one encoded."""
    if isinstance(exc, BodyTooLarge):
        return 413, {}
    if isinstance(exc, EncodingNotSupported):
        return 415, {"Accept-Encoding": "identity"}
    return None


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
    encodings = ",".join(request.headers.getlist("content-encoding")).lower()
    if any(coding.strip() not in ("", "identity") for coding in encodings.split(",")):
        raise EncodingNotSupported(
            f"Content-Encoding {encodings[:100]!r} is not accepted: send the body unencoded"
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
        text = body.decode("utf-8")
        payload = strict_json.loads(text)
    except strict_json.NestedTooDeeply:
        raise InvalidRequest("request nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and UnicodeEncodeError among them
        raise ParseError("invalid JSON") from None
    if isinstance(payload, dict):
        _unique_keys(text, payload)
    return payload


def _unique_keys(text: str, payload: dict[str, Any]) -> None:
    """Refuse a request object (``payload``, read from ``text``) that names
    a key twice (RFC 7493, I-JSON, forbids it). Its own keys only: what it
    holds is validated by the operation's model.

    Parsing again, keeping each object's pairs, costs ~60% of a parse, so it
    is done only when the text may name a key twice: when one of the
    object's (few, plain) keys is found more than once in it, or an escape
    (``\\u00…``) could spell one. A send costs a look at its text (~1 us),
    a ``GetTask`` the second parse too (~2 us: its params name ``id`` again)."""
    if len(payload) <= _FEW_KEYS and "\\u00" not in text:
        for key in payload:
            if not (key.isascii() and key.isalnum()) or text.count(f'"{key}"') != 1:
                break
        else:
            return
    seen: set[str] = set()
    for key, _ in _PAIRS.decode(text):  # the outer object's pairs: the hook's last call
        if key in seen:
            raise InvalidRequest(f"the request object names {key[:100]!r} twice")
        seen.add(key)


def _pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return pairs


#: Reads every object as its list of pairs (made once: a reader costs ~3 us to make).
_PAIRS = json.JSONDecoder(object_pairs_hook=_pairs)
