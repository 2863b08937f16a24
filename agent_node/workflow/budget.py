"""What one execution may spend on models (:class:`Budget`): a workflow's
own, tightened by one given when it starts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Budget"]


class Budget(BaseModel):
    """What one execution may spend on models (its model nodes' and judges'
    calls together): ``tokens`` (prompt and answer), ``cost`` (USD, as the
    model client prices calls; local models are free) and ``calls``. Each
    call is checked before it is made (:mod:`agent_node.nodes.model_budget`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, ge=0)
    calls: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.tokens is None and self.cost is None and self.calls is None:
            raise ValueError("a budget limits 'tokens', 'cost' or 'calls'")
        return self

    def tightened(self, other: Budget | None) -> Budget:
        """Each limit the lower of this one's and ``other``'s."""
        if other is None:
            return self

        def least(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)

        return Budget(
            tokens=least(self.tokens, other.tokens),
            cost=least(self.cost, other.cost),
            calls=least(self.calls, other.calls),
        )
