"""The default transport of the ``http`` node (:mod:`agent_node.nodes.http`): httpx.

Without a client of its own, each request gets a fresh ``httpx.AsyncClient``
closed when the answer is read: executors have no close hook, and a pooled
client would outlive the event loop it was made in. The TLS context (httpx's
default CA bundle), the expensive part of a client, is built once per
process. An application that wants connection reuse,
a proxy or client certificates passes its own client (and closes it).

The environment (``HTTP_PROXY``, ``.netrc``, ``SSL_CERT_FILE``) is ignored:
a workflow sends what it says, to where it says, wherever it runs.
Redirects are never followed here — the node decides which to follow.
httpx's errors become :class:`~agent_node.errors.NodeFailed` (a timeout:
:class:`~agent_node.errors.NodeTimeout`) at this boundary, in one place.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Iterator

import httpx

from agent_node.content_length import declared_over
from agent_node.errors import NodeFailed, NodeTimeout
from agent_node.nodes.http_transport import HttpRequest, HttpResponse, bare_url

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """Sends http node requests with httpx (satisfies ``HttpTransport``).

    ``client``, when given, is used for every request; its owner closes it.
    """

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client

    async def send(self, request: HttpRequest) -> HttpResponse:
        with _translated(request):
            if self._client is not None:
                return await _exchange(self._client, request)
            async with httpx.AsyncClient(verify=_tls(), trust_env=False) as client:
                return await _exchange(client, request)


async def _exchange(client: httpx.AsyncClient, request: HttpRequest) -> HttpResponse:
    async with client.stream(
        request.method,
        request.url,
        headers=list(request.headers),
        content=request.content,
        timeout=request.timeout,
        follow_redirects=False,
    ) as response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        content, oversized = await _read(response, request.max_bytes)
        return HttpResponse(response.status_code, headers, content, oversized)


async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decompressed) body, and whether there was more."""
    declared = response.headers.get("content-length", "")
    if declared_over(declared, limit):
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: len(chunk) - (size - limit)])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


@contextlib.contextmanager
def _translated(request: HttpRequest) -> Iterator[None]:
    """httpx's errors as ours, naming the request (without its query)."""
    where = f"{request.method} {bare_url(request.url)}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise NodeTimeout(f"{where}: timed out ({type(exc).__name__})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise NodeFailed(f"{where}: {detail}") from exc


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)
