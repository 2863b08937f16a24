"""JSON logs (``agent-node serve --log-format json``): one object a line on
stderr (:mod:`.stderr_log`), for log pipelines that index fields rather
than parse sentences. No control character (a bidirectional one neither)
is written raw, whatever the message holds
(:func:`~agent_node.printable.printable_json`).

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
import logging
import re
from typing import Any

from agent_node.engine.context import node_context
from agent_node.printable import printable_json
from agent_node.telemetry.traces_ids import visit_span_id

__all__ = ["JsonFormatter"]

#: Loggers whose lines about a node visit name it first (:func:`_visit_named`).
_VISIT_LOGGERS = ("agent_node.engine", "agent_node.a2a.peers")
#: A visit's key: ``<execution>/<node>/<visit>``.
_VISIT_KEY = re.compile(r"([^/\s]+)/([^/\s]+)/(\d+)$")
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
        if "execution_id" not in line and record.name.startswith(_VISIT_LOGGERS):
            _visit_named(line, record.args)
        if "execution_id" in line:
            line.setdefault("task_id", line["execution_id"])
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return printable_json(line, default=str)


def _visit_named(line: dict[str, Any], args: Any) -> None:
    """The execution, node and visit a line of the engine or the delegation
    watchdog names first (``execution/node/visit``, or its tuple), as fields:
    their lines about a visit are logged outside its attempt (found by an
    operator's walk: thousands of such lines had the id in their text only)."""
    first = args[0] if isinstance(args, tuple) and args else None
    if isinstance(first, str) and (named := _VISIT_KEY.match(first)) is not None:
        execution_id, node, visit = named.group(1), named.group(2), int(named.group(3))
    elif isinstance(first, tuple) and len(first) == 3 and isinstance(first[2], int):
        execution_id, node, visit = str(first[0]), str(first[1]), first[2]
    else:
        return
    line.update(execution_id=execution_id, node=node, visit=visit)


def _trace(line: dict[str, Any], traceparent: str | None, visit: str) -> None:
    """The trace of the execution, and the span of the node visit logging —
    the id its span has when traces are exported (:mod:`.traces_ids`), so a
    log line and its span meet in a backend."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4:
        line["trace_id"] = parts[1]
        line["span_id"] = f"{visit_span_id(visit):016x}"
