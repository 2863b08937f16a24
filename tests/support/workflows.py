"""Small workflows that tests of the A2A surface serve as skills."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agent_node import Workflow

__all__ = ["Greeting", "greeter"]


class Greeting(BaseModel):
    text: str = ""
    reply: str = ""


def greeter() -> Workflow:
    """One step that answers ``Hello! You said: <text>`` (the output: ``reply``)."""
    wf = Workflow("greeter", version="1")
    wf.state(Greeting)

    @wf.step
    async def greet(s: Greeting) -> dict[str, Any]:
        return {"reply": f"Hello! You said: {s.text}"}

    wf.end("done", output=["reply"])
    return wf
