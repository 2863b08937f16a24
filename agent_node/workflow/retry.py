"""How a failing node is retried (:class:`RetryPolicy`), as a node spec or
the SDK's ``retry=`` gives it; :data:`NO_RETRY` is one attempt only."""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_node.workflow.durations import as_duration

__all__ = ["NO_RETRY", "RetryPolicy"]


class RetryPolicy(BaseModel):
    """How a failing node is retried: exponential backoff with jitter.

    ``max_attempts`` counts every attempt, the first included (1 = no retry).
    The delay before attempt ``n + 1`` is ``initial_delay * backoff ** (n - 1)``,
    capped at ``max_delay``, then spread by ``± jitter`` (a fraction).

    ``rate_limited`` counts apart: how many times one visit may be told to
    come back later (a 429, :class:`~agent_node.errors.Throttled`) and park
    on a durable timer — its ``Retry-After``, else the delay above — without
    using an attempt. Past that, being throttled is a failed attempt.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial_delay: float = Field(default=0.5, ge=0)
    backoff: float = Field(default=2.0, ge=1.0)
    max_delay: float = Field(default=60.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1)
    rate_limited: int = Field(default=10, ge=0, le=1000)

    _durations = field_validator("initial_delay", "max_delay", mode="before")(as_duration)

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.backoff ** max(0, attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rng() - 1)))


NO_RETRY = RetryPolicy(max_attempts=1)
