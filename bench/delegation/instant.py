"""B's skill in the push and watchdog scenarios of rtt_bench.py: done at once.

One python step, then the end: the step sets ``reply`` from the ``n`` A's
delegate node sent as a data part, and the A2A layer turns the final state
into a completed task (``reply`` becomes the artifact's text part). As for any
workflow, the step's completion is committed to B's store before the task is
settled and pushed.
"""

from __future__ import annotations

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("instant", version="1", description="Completes at once.")


@wf.state
class Job(BaseModel):
    n: int = 0  # from A's data part
    reply: str = ""  # the artifact's text part


@wf.step(next=None)
async def finish(s: Job) -> dict[str, str]:
    return {"reply": f"done {s.n}"}
