"""Each execution that fails, told once on the ``agent_node.failures`` logger.

At INFO, so ``run`` and the SDK (which say it themselves) print nothing more;
``serve`` prints these as one line per task. Whatever ended it — a node that
failed for good, a delegation whose peer's task failed, a wait that timed out
into a failure — is reported after its transaction committed.
"""

from __future__ import annotations

import logging

from agent_node.store.records import ExecutionRecord

__all__ = ["failures", "report"]

failures = logging.getLogger("agent_node.failures")


def report(record: ExecutionRecord) -> None:
    """Log ``record`` if it has failed (its id, workflow and error in ``extra``)."""
    if record.status == "failed":
        error = " ".join((record.error or "").split())
        failures.info(
            "execution %s (workflow %s) failed: %s",
            record.id,
            record.workflow_id,
            error,
            extra={"execution_id": record.id, "workflow_id": record.workflow_id, "error": error},
        )
