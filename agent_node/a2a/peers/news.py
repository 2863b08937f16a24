"""News of a peer's task reaching its delegation: :func:`inform`.

Every piece of news — the answer to a send, a poll, a stream's event, a
push — goes through this one function, one transaction that decides from
the row as it is then (:mod:`agent_node.nodes.delegation`); the watchdog,
the peers' streams and the push receiver all call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_node.runtime import Runtime
from agent_node.store.records import DelegationRecord

__all__ = ["inform"]


async def inform(runtime: Runtime, row: DelegationRecord, news: Mapping[str, Any]) -> bool:
    """Apply ``news`` to ``row``'s visit and run what it made ready; False
    when its execution is gone."""
    done = await runtime.engine.control.inform(row.execution_id, row.node, row.visit, news)
    if done:
        runtime.engine.drive(row.execution_id)
    return done
