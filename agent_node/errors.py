"""One exception tree for the whole package.

::

    AgentNodeError                      (Exception)
    ├── UsageError                      a mistake by the caller or the author
    │   ├── ConfigError                 bad configuration, store URL, CLI input
    │   ├── WorkflowDefinitionError     a workflow that does not compile
    │   │   └── (carries file, node and field of the mistake)
    │   ├── UnknownExecution            no execution has that id
    │   └── InvalidSignal               no wait of that execution accepts the event
    └── RuntimeFailure                  something went wrong while running
        ├── NodeFailed                  a node's body raised, or its result is invalid
        ├── PermanentFailure            a NodeFailed that no retry can mend: not retried
        ├── NotEquipped                 this process lacks what the node needs (MCP servers, peers)
        ├── NodeTimeout                 a node ran past its timeout
        ├── StateValidationError        a state (patch) does not match the schema: permanent
        ├── Fenced                      our lease was taken over; the write was refused
        └── StoreError                  the store is unreachable or corrupt
            ├── StoreFull               the store could not write: its disk or database is full
            ├── StoreOutdated           a newer agent-node upgraded the store under this process
            └── StoreInUse              an upgrade refused: other processes have the store open

    ControlSignal                       (BaseException: `except Exception` can't swallow it)
    └── faults.InjectedCrash            a simulated crash at a named fault point (tests)

Messages for users never carry pydantic's own rendering of a
``ValidationError`` (a URL per error, the input echoed): :mod:`.problems`
says each error as its field path and what is wrong.

Cancellation is a control signal too: cancelling an execution cancels the
asyncio task running its node, so the step sees ``asyncio.CancelledError``
— a ``BaseException``, which ``try: ... except Exception:`` inside a step
cannot swallow. The engine then commits nothing for that attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AgentNodeError",
    "ConfigError",
    "ControlSignal",
    "Fenced",
    "InvalidSignal",
    "NodeFailed",
    "NodeTimeout",
    "NotEquipped",
    "PermanentFailure",
    "RuntimeFailure",
    "StateValidationError",
    "StoreError",
    "StoreFull",
    "StoreInUse",
    "StoreOutdated",
    "Throttled",
    "UnknownExecution",
    "UsageError",
    "WorkflowDefinitionError",
]


class AgentNodeError(Exception):
    """Root of every error this package raises on purpose."""


class UsageError(AgentNodeError):
    """The caller or the workflow's author made a mistake."""


class ConfigError(UsageError):
    """Bad configuration: store URL, CLI flag, config file."""


class WorkflowDefinitionError(UsageError):
    """A workflow that does not compile.

    ``where`` names the place of the mistake: ``file``, ``node`` and ``field``
    are each given when known, and appear in the message.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        node: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.node = node
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = [
            f"{label} {value!r}"
            for label, value in (("file", self.file), ("node", self.node), ("field", self.field))
            if value
        ]
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def in_file(self, file: str) -> WorkflowDefinitionError:
        """The same error, now naming the file it came from."""
        return WorkflowDefinitionError(self.reason, file=file, node=self.node, field=self.field)


class UnknownExecution(UsageError):
    """No execution has this id (in ``store``, when it is named)."""

    def __init__(self, execution_id: str, store: str | None = None) -> None:
        self.execution_id = execution_id
        self.store = store
        where = f" in {store}" if store else ""
        super().__init__(f"no execution with id {execution_id!r}{where}")


class InvalidSignal(UsageError):
    """The execution has no wait that accepts this event."""


class RuntimeFailure(AgentNodeError):
    """Something went wrong while running a workflow."""


class NodeFailed(RuntimeFailure):
    """A node's body raised, or returned something invalid."""

    #: What the failed attempt's model calls cost (``node_failed`` records
    #: it: they count all the same, against budgets too).
    usage: Mapping[str, Any] | None = None


class PermanentFailure(NodeFailed):
    """A failure no retry can mend (a 404, a peer refusing the request):
    the node fails at once, whatever its retry policy."""


class NotEquipped(NodeFailed):
    """This process lacks what the node needs to run (no ``mcp:`` servers for
    a tool node, no ``peers:`` for a delegate node): not the execution's
    fault. An engine that runs a whole store (a worker, ``resume``, a
    served node) leaves the visit to a process that has it, without using
    an attempt; an in-process run fails with it, saying what to configure."""


class Throttled(NodeFailed):
    """The service a node called asked it to come back later (an HTTP 429,
    a provider's rate limit): the visit parks on a durable timer for
    ``retry_after`` seconds (None: the retry policy's delay) without using
    an attempt, up to its policy's ``rate_limited`` times."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NodeTimeout(NodeFailed):
    """A node ran past its timeout."""


class StateValidationError(PermanentFailure):
    """A state or state patch does not validate against the workflow's schema.
    Permanent: a node whose output does not fit the state fails at once,
    whatever its type and retry policy (asking a model or a service again
    would spend calls on an error that stays)."""


class Fenced(RuntimeFailure):
    """Our lease on a work item was taken over: the write was refused."""


class StoreError(RuntimeFailure):
    """The store failed (unreachable, corrupt, or a schema it cannot use)."""


class StoreFull(StoreError):
    """The store could not write: its disk (or PostgreSQL's) is full. Nothing
    of the write was kept; it may succeed once space is freed."""


class StoreOutdated(StoreError):
    """A newer agent-node upgraded the store this process has open: what this
    one would write, the new schema may not hold. The process stops taking
    work and stops (:mod:`agent_node.engine.schema_guard`)."""


class StoreInUse(StoreError):
    """Upgrading the store was refused: other processes have it open, which
    the new schema would break (:mod:`agent_node.store.attached`)."""


class ControlSignal(BaseException):
    """Flow control, not failure. Derives from BaseException on purpose."""
