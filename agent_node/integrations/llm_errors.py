"""Model failures, classified: what a model node, a fallback chain and the
retry policy do next depends on it (:mod:`agent_node.nodes.model_client`).

From an HTTP status (:func:`failure_for`, the direct streaming client's) or
from litellm's and httpx's exceptions (:func:`translated`):

* 429, a provider's rate limit → :class:`RateLimited` (``Retry-After`` or
  ``retry-after-ms`` read): the visit parks on a durable timer;
* no answer at all (refused, unreachable, timed out) or a 5xx →
  :class:`ModelUnavailable`: retried, or the next model of a chain;
* 404 → :class:`ModelMissing` (not installed, not served);
* 408, 409, 425 → a plain failure, retried;
* any other 4xx → :class:`ModelRefused`: asking again changes nothing.

litellm says two other things as a 500 of its own making, told apart here
by what they say: no credentials for the provider (``Missing credentials``,
``Missing … API key``) → :class:`ModelNotConfigured`, a configuration
error, not retried; an answer that is not JSON (a 200 whose body does not
parse) → :class:`ModelUnavailable` saying so, as the direct client says it.

Every message names the model, and says what to do when nothing answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from agent_node.errors import NodeFailed
from agent_node.nodes.model_client import (
    ModelMissing,
    ModelNotConfigured,
    ModelRefused,
    ModelUnavailable,
    RateLimited,
)
from agent_node.workflow.durations import parse_retry_after

__all__ = ["failure_for", "retry_after", "translated", "unanswered"]

_MAX_ERROR = 500
#: 4xx statuses a later attempt may get past; every other 4xx is a refusal.
_RETRYABLE = frozenset({408, 409, 425, 429})
_UNANSWERED = frozenset({"APIConnectionError", "Timeout", "APITimeoutError", "ConnectError"})
#: How litellm's OpenAI provider says nothing answered (as an HTTP 500 of its own).
_NO_CONNECTION = "Connection error."
#: litellm's prefixes: "litellm.NotFoundError: Ollama_chatException - …".
_NOISE = re.compile(r"^(litellm\.\w+: )?(\w+Exception - )?")
#: How providers' clients say they have no key: "Missing credentials. …",
#: "Missing Anthropic API Key", "The api_key client option must be set …".
_NO_KEY = re.compile(
    r"\bmissing\b[^.\n]{0,40}\b(credentials|api[ _-]?key)\b|\bapi_key\b[^.\n]{0,40}\bmust be set\b",
    re.IGNORECASE,
)


def failure_for(status: int, message: str, headers: Mapping[str, str] | None = None) -> NodeFailed:
    """The failure an HTTP ``status`` answer means (``message`` names the model)."""
    if status == 429:
        return RateLimited(message, retry_after(headers))
    if status >= 500:
        return ModelUnavailable(message)
    if status == 404:
        return ModelMissing(message)
    refused = 400 <= status < 500 and status not in _RETRYABLE
    return (ModelRefused if refused else NodeFailed)(message)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an
    HTTP date; ``retry-after-ms``), None when it did not say."""
    if headers is None:
        return None
    try:
        if (millis := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(millis) / 1000)
        return parse_retry_after(headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


@contextmanager
def translated(model: str, what_to_do: str = "") -> Iterator[None]:
    """litellm's (and httpx's) exceptions → ``NodeFailed`` naming the model;
    ``what_to_do`` is added when the server did not answer at all."""
    try:
        yield
    except NodeFailed:
        raise
    except Exception as exc:
        if _NO_KEY.search(str(exc)):
            raise ModelNotConfigured(
                f"model {model!r}: this process has no credentials for its provider:"
                f" {_text(exc).splitlines()[0]}"
            ) from exc
        if (unreadable := _unreadable(exc)) is not None:
            raise ModelUnavailable(
                f"model {model!r}: an answer that cannot be read: {unreadable}"
            ) from exc
        hint = f"; {what_to_do}" if what_to_do and unanswered(exc) else ""
        message = f"model {model!r}: {_describe(exc)}{hint}"
        status = getattr(exc, "status_code", None)
        if type(exc).__name__ == "RateLimitError":
            status = 429
        elif type(exc).__name__ == "NotFoundError":
            status = 404
        if unanswered(exc):
            raise ModelUnavailable(message) from exc
        if not isinstance(status, int):
            raise NodeFailed(message) from exc
        raise failure_for(status, message, _headers(exc)) from exc


def _headers(exc: Exception) -> Mapping[str, str] | None:
    headers = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) or hasattr(headers, "get") else None


def unanswered(exc: Exception) -> bool:
    """Whether no server answered at all (refused, unreachable, timed out)."""
    return type(exc).__name__ in _UNANSWERED or str(exc).rstrip().endswith(_NO_CONNECTION)


def _unreadable(exc: BaseException) -> str | None:
    """What did not parse, when ``exc`` (or what caused it) is an answer's
    JSON that does not."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes, not a cycle
        if seen is None:
            return None
        if isinstance(seen, json.JSONDecodeError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _text(exc: Exception) -> str:
    """What ``exc`` says, without litellm's prefixes, cut short."""
    text = str(getattr(exc, "message", "") or exc).strip()
    text = _NOISE.sub("", text).strip() or type(exc).__name__
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _describe(exc: Exception) -> str:
    kind = type(exc).__name__
    status = getattr(exc, "status_code", None)
    # litellm gives connection failures and timeouts a made-up status.
    answered = isinstance(status, int) and not unanswered(exc)
    where = f"{kind} (HTTP {status})" if answered else kind
    return f"{where}: {_text(exc)}"
