"""What an ``http`` node sends through: the contract its adapter implements.

:class:`HttpTransport` (:class:`agent_node.integrations.http_client.HttpxTransport`:
httpx) sends one :class:`HttpRequest` and reads its :class:`HttpResponse`,
never following a redirect; :func:`bare_url` is how a URL is shown in its
messages and the node's. Apart from the executor (:mod:`.http`) as
:mod:`.model_client` is from the model node's: the adapter imports this
contract, never the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

__all__ = ["HttpRequest", "HttpResponse", "HttpTransport", "bare_url"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, as :class:`HttpTransport` sends it."""

    method: str
    #: The full URL, query included.
    url: str
    headers: tuple[tuple[str, str], ...]
    content: bytes | None
    #: Seconds for each phase (connect, write, read); ``None``: no limit.
    timeout: float | None
    #: Read at most this many bytes of the answer's body.
    max_bytes: int


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What came back. ``headers`` has lower-case names (repeated ones joined
    by ``", "``); ``oversized``: the body was longer than ``max_bytes``, and
    ``content`` holds only what was read before the cap."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    oversized: bool = False


class HttpTransport(Protocol):
    """The network side of the http node (``agent_node.integrations.http_client``)."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and read its answer; never follow a redirect.
        Raise on a network error or a timeout (the node's retry policy
        retries it): :class:`~agent_node.errors.NodeFailed`, with the method
        and :func:`bare_url` in the message."""
        ...


def bare_url(url: str) -> str:
    """``url`` as records and messages show it: no user info, query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
