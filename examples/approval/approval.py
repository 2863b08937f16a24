"""A workflow that parks until a human approves, then continues — across restarts.

    python examples/approval/approval.py            # starts it; it parks at `approve`
    agent-node signal <id> decision --data '{"approved": true, "by": "ops"}'
    python examples/approval/approval.py <id>       # resumes it to the end

Nothing stays in memory while it waits: the wait is a row in the store
(SQLite under .agent-node/ by default), so the process may exit or crash.
"""

from __future__ import annotations

import sys

from pydantic import BaseModel

from agent_node import RetryPolicy, Workflow, current_node

wf = Workflow("expense-approval", version="1")


@wf.state
class Expense(BaseModel):
    employee: str
    amount: float
    decision: dict[str, object] | None = None
    status: str = "new"


@wf.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.5))
async def submit(expense: Expense) -> Expense:
    # Effects that leave the process carry the attempt's idempotency key.
    key = current_node().idempotency_key
    print(f"submitted {expense.amount:.2f} for {expense.employee} (idempotency key {key})")
    return expense.model_copy(update={"status": "submitted"})


@wf.step(next={"pay": lambda e: e.amount < 100, "approve": lambda e: True})
async def check(expense: Expense) -> None:
    return None


wf.wait("approve", event="decision", output="decision", timeout="7d", on_timeout="reject")


@wf.step(
    next={
        "pay": lambda e: bool(e.decision and e.decision.get("approved")),
        "reject": lambda e: True,
    }
)
async def review(expense: Expense) -> None:
    return None


@wf.step(next=None)
async def pay(expense: Expense) -> dict[str, str]:
    return {"status": "paid"}


@wf.step(next=None)
async def reject(expense: Expense) -> dict[str, str]:
    return {"status": "rejected"}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        result = wf.run_sync(execution_id=sys.argv[1])
    else:
        result = wf.run_sync(Expense(employee="Ada", amount=250.0))
    print(f"{result.execution_id}: {result.status} → {result.state.model_dump()}")
    if result.status == "waiting":
        decision = """'{"approved": true, "by": "ops"}'"""
        print("next:")
        print(f"  agent-node signal {result.execution_id} decision --data {decision}")
        print(f"  python {sys.argv[0]} {result.execution_id}   # resumes it to the end")
