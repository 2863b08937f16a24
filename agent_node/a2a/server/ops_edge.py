"""The operator API's edge: reading a request's parameters and body, and
refusing what does not fit with a clear message.

Every handler of :mod:`.ops` takes its input through these helpers, so bad
input anywhere is one :class:`Refused` (HTTP 400, 404 or 409 with a JSON
``{"error": {code, status, message}}``) and never an exception of the app.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from agent_node.errors import UnknownExecution
from agent_node.runtime import Runtime
from agent_node.store import ExecutionRecord

__all__ = [
    "MAX_BODY",
    "MAX_TEXT",
    "Refused",
    "boolean",
    "integer",
    "number",
    "read_body",
    "record_of",
    "summary",
    "text",
]

MAX_BODY = 256 * 1024
#: The longest text a query parameter may hold (an id, a workflow, a caller).
MAX_TEXT = 500

_REASONS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "CONFLICT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class Refused(Exception):
    """What a handler answers instead of its result: an HTTP status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        reason = _REASONS.get(self.status, "FAILED_PRECONDITION")
        return {"error": {"code": self.status, "status": reason, "message": self.message}}


def integer(raw: str | None, name: str, low: int, high: int, default: int) -> int:
    """The query parameter ``name`` as an integer within ``[low, high]``."""
    if raw is None:
        return default
    # isascii: str.isdigit() holds for '²', which int() refuses.
    ok = raw.isascii() and raw.isdigit() and len(raw) <= 18
    if not ok or not low <= int(raw) <= high:
        raise Refused(400, f"{name} must be an integer from {low} to {high}")
    return int(raw)


def number(raw: str | None, name: str) -> float | None:
    """The query parameter ``name`` as epoch seconds (a finite number ≥ 0)."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if len(raw) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise Refused(400, f"{name} must be a time in epoch seconds (a number ≥ 0), not {raw!r}")
    return value


def text(raw: str | None, name: str) -> str | None:
    """The query parameter ``name`` as text: printable, at most :data:`MAX_TEXT`
    characters; empty is absent."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT or not raw.isprintable():
        raise Refused(400, f"{name} must be printable text of at most {MAX_TEXT} characters")
    return raw


def boolean(raw: str | None, name: str) -> bool:
    if raw is None or raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise Refused(400, f"{name} must be 1 or 0")


async def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (``{}`` when empty), read up to :data:`MAX_BODY`."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(400, f"body larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "body must be a JSON object")
    return body


async def record_of(request: Request, runtime: Runtime) -> ExecutionRecord:
    """The execution the path names; 404 when there is none."""
    execution_id = request.path_params["id"]
    try:
        record = await runtime.store.get(execution_id)
    except UnknownExecution:
        record = None
    if record is None:
        raise Refused(404, f"no execution {execution_id!r}")
    return record


def summary(record: ExecutionRecord) -> dict[str, Any]:
    """What a list shows of an execution (its state is left out: it can be large)."""
    return {
        "id": record.id,
        "workflow": record.workflow_id,
        "version": record.workflow_version,
        "status": record.status,
        "caller": record.caller,
        "context_id": record.context_id,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
