"""The worker's skill: a summary of the text it is sent (no model needed)."""

from __future__ import annotations

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("summarize", version="1", description="Summarizes a text in one line.")


@wf.state
class Job(BaseModel):
    topic: str = ""
    text: str = ""
    summary: str = ""
    words: int = 0


@wf.step(next=None)
async def summarize(job: Job) -> dict[str, object]:
    words = job.text.split()
    head = " ".join(words[:12]) + (" …" if len(words) > 12 else "")
    return {"summary": f"{job.topic}: {head}", "words": len(words)}
