"""How a call to a peer failed, as :class:`PeerError`: worth trying again or not.

One place reads every way a peer's answer can go wrong — no answer at all,
an HTTP error, a body that is not JSON-RPC, a JSON-RPC error — and says
whether trying again later may help (``transient``: the peer could not be
reached, timed out, was busy — 408, 425, 429, 5xx, honouring
``Retry-After`` — or answered ``-32603``, ``-32032`` or ``-32033``) or not (the request
itself is wrong or forbidden). Messages name the peer by name and say what
was wrong; URLs are scrubbed from them (they name internal hosts a caller
must not see).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from agent_node.a2a.peers.client import IdentityMismatch, shown_identity
from agent_node.a2a.peers.discovery import PeerCard, PeerUnavailable
from agent_node.a2a.protocol import strict_json
from agent_node.a2a.protocol.error_table import ProtocolError
from agent_node.errors import RuntimeFailure
from agent_node.nodes.delegation import scrub
from agent_node.workflow.durations import parse_retry_after

__all__ = [
    "INTERNAL_ERROR",
    "TRANSIENT_CODES",
    "TRANSIENT_STATUSES",
    "PeerError",
    "answer_of",
    "code_of_reason",
    "did",
    "excerpt",
    "read_json",
    "retry_after",
    "scrub",
    "unavailable",
    "unreachable",
]

#: JSON-RPC errors that say the peer could not serve the request now (internal
#: error; agent-node's rate limit, and its -32033: store out of reach, starting
#: or stopping): worth trying again. Any other says the request is wrong or
#: forbidden.
TRANSIENT_CODES = frozenset({-32603, -32032, -32033})
#: agent-node's own JSON-RPC code for a caller it cannot name (HTTP 401).
UNAUTHENTICATED = -32030
#: The peer took the request and failed on it (JSON-RPC's internal error).
INTERNAL_ERROR = -32603
#: HTTP statuses worth trying again.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class PeerError(RuntimeFailure):
    """A call to a peer failed. ``transient``: trying again later may help;
    ``retry_after``: seconds the peer asked us to wait; ``code``: its
    JSON-RPC error code, when it answered with one; ``down``: the peer did
    not answer at all (refused, reset, timed out, its card could not be
    fetched): it is taken as down until it answers again."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        code: int | None = None,
        status: int | None = None,
        down: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.down = down
        self.retry_after = retry_after
        self.code = code
        #: The HTTP status of the answer, when there was one.
        self.status = status

    @property
    def unauthenticated(self) -> bool:
        """The peer did not take our credentials (HTTP 401, or agent-node's -32030)."""
        return self.status == 401 or self.code == UNAUTHENTICATED


_BY_REASON = {row.value.reason: row.value.code for row in ProtocolError}


def code_of_reason(reason: object) -> int | None:
    """The JSON-RPC code of the protocol error an ``ErrorInfo`` reason names
    (REST and gRPC errors name them so); None for a reason we do not know."""
    return _BY_REASON.get(reason) if isinstance(reason, str) else None


def answer_of(card: PeerCard, method: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of ``response``; a :class:`PeerError` for HTTP
    errors and for bodies that are not JSON-RPC."""
    status = response.status_code
    answer, unread = read_json(response)
    if isinstance(answer, dict) and ("result" in answer or "error" in answer):
        if status < 400 or isinstance(answer.get("error"), dict):
            return answer
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    what = "JSON-RPC" if isinstance(answer, dict) else kind + unread
    raise PeerError(
        f"peer {card.name!r} answered {method} with HTTP {status} ({what}): "
        + (excerpt(response.text) or "empty body"),
        transient=status in TRANSIENT_STATUSES,
        retry_after=retry_after(response),
        status=status,
    )


def read_json(response: httpx.Response) -> tuple[Any, str]:
    """The JSON of ``response`` as :mod:`~agent_node.a2a.protocol.strict_json`
    reads it (None when it cannot), and, for a body that says it is JSON but
    is not, why (``", NaN is not JSON"``) to add to what the error quotes."""
    try:
        return strict_json.loads(response.content), ""
    except ValueError as exc:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        json_said = kind == "application/json" or kind.endswith("+json")
        return None, f", {excerpt(str(exc), 80)}" if json_said else ""


def unreachable(card: PeerCard, exc: httpx.HTTPError) -> PeerError:
    """A call that got no answer. A server that is not the peer's identity
    (:class:`~agent_node.a2a.peers.client.IdentityMismatch`, found at the handshake,
    before anything was sent) is a refusal for good, naming who it was."""
    if isinstance(exc, IdentityMismatch):
        shown = shown_identity(exc.presented, tls=exc.tls)
        return PeerError(
            f"peer {card.name!r} rejected: the server presented {shown}, expected {exc.expected}",
            transient=False,
        )
    detail = scrub(str(exc)) or type(exc).__name__
    # A transport failure (refused, reset, timed out) is the network's;
    # anything else httpx raises (an invalid URL, a TLS verification error)
    # is ours or the peer's configuration.
    transient = isinstance(exc, httpx.TransportError) and not _is_tls_refusal(exc)
    return PeerError(
        f"peer {card.name!r} unreachable: {type(exc).__name__}: {detail}",
        transient=transient,
        down=transient,
    )


def _is_tls_refusal(exc: httpx.HTTPError) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def unavailable(exc: PeerUnavailable) -> PeerError:
    """A peer whose card cannot be had now: try again later — unless it is
    not who it must be, or its card points where we may not go."""
    name = exc.peer or "?"
    if exc.permanent:  # its reason names identities and origins, never a URL: kept whole
        return PeerError(f"peer {name!r} rejected: {exc.reason}", transient=False)
    return PeerError(f"peer {name!r} unavailable: {scrub(exc.reason)}", transient=True, down=True)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date)."""
    return parse_retry_after(response.headers.get("retry-after"))


def excerpt(text: str, limit: int = 120) -> str:
    """A short, single-line, URL-free excerpt of a body (an HTML error page)."""
    plain = re.sub(r"<[^>]*>", " ", text)
    plain = " ".join(plain.split())
    plain = scrub(plain)
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"


def did(code: int | None) -> str:
    """What a peer that answered with the error ``code`` did with the
    request: failed on it (an internal error), else refused it."""
    return "failed on" if code == INTERNAL_ERROR else "refused"
