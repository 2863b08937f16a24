"""JSON logs (``agent-node serve --log-format json``): one object a line on
stderr, for log pipelines that index fields rather than parse sentences.

Each line carries ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, and what is known of where it happened: ``execution_id`` and
``task_id`` (an A2A task's id is its execution's), ``node``, ``visit``,
``attempt``, ``trace_id`` and ``span_id`` (the visit's span, as exported
traces name it) — from the node attempt running
when the line was logged (:data:`agent_node.engine.context.node_context`),
or from the record's own ``extra``. A traceback goes in ``exception``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from agent_node.engine.context import node_context
from agent_node.telemetry.traces_ids import visit_span_id

__all__ = ["JsonFormatter", "use_json_logs"]

#: Record attributes copied when a caller passed them in ``extra``.
_EXTRA = ("execution_id", "task_id", "node", "visit", "attempt", "workflow_id", "error", "peer")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = node_context.get()
        if ctx is not None:
            line.update(
                execution_id=ctx.execution_id,
                node=ctx.spec.id,
                visit=ctx.visit,
                attempt=ctx.attempt,
            )
            _trace(line, ctx.traceparent, ctx.idempotency_key)
        for key in _EXTRA:
            found = record.__dict__.get(key)
            if found is not None:
                line[key] = found
        if "execution_id" in line:
            line.setdefault("task_id", line["execution_id"])
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _trace(line: dict[str, Any], traceparent: str | None, visit: str) -> None:
    """The trace of the execution, and the span of the node visit logging —
    the id its span has when traces are exported (:mod:`.traces_ids`), so a
    log line and its span meet in a backend."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4:
        line["trace_id"] = parts[1]
        line["span_id"] = f"{visit_span_id(visit):016x}"


def use_json_logs(level: int = logging.INFO) -> Callable[[], None]:
    """Send every log record at ``level`` or above to stderr as JSON; returns
    the way back."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "LiteLLM", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    def stop() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    return stop
