"""What a new task takes from the call that creates it: its id and its metadata.

* The id is random, unless the send has an ``Idempotency-Key``: then it is
  derived from (caller, key), so a repeated send finds the task the first
  one created (``messageId`` is never a dedupe key: clients reuse them).
* The metadata (shown as the task's ``metadata``) records who made it
  (``caller``), the W3C trace it runs in (``traceparent``: the caller's,
  else a new one, and then ``trace_root``: its span id is nobody's, so the
  execution's span is the trace's root) and the output modes its caller
  accepts (:mod:`agent_node.a2a.server.output_modes`).
"""

from __future__ import annotations

import uuid
from typing import Any

from agent_node.a2a.protocol.models import SendMessageRequest
from agent_node.a2a.server.handler import CallContext
from agent_node.a2a.server.output_modes import METADATA_KEY
from agent_node.ids import new_id
from agent_node.tracing import new_traceparent, valid_traceparent

__all__ = ["metadata_of", "task_id_of"]

_IDEMPOTENCY = uuid.UUID("6f1d0c8e-52a4-4d43-9a55-2f6c1c9a4b21")


def metadata_of(ctx: CallContext, request: SendMessageRequest) -> dict[str, Any]:
    """What a new task records of its call: who made it, in which trace, and
    the output modes it accepts (:mod:`agent_node.a2a.server.output_modes`)."""
    trace = valid_traceparent(ctx.traceparent)
    recorded: dict[str, Any] = {"traceparent": trace or new_traceparent()}
    if trace is None:
        recorded["trace_root"] = True
    if ctx.caller is not None:
        recorded = {"caller": ctx.caller, **recorded}
    config = request.configuration
    if config is not None and config.accepted_output_modes:
        recorded[METADATA_KEY] = list(config.accepted_output_modes)
    return recorded


def task_id_of(ctx: CallContext) -> str:
    if ctx.idempotency_key is None:
        return new_id()
    return str(uuid.uuid5(_IDEMPOTENCY, f"{ctx.caller or ''}\0{ctx.idempotency_key}"))
