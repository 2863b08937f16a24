"""Small workflows that tests of the A2A surface serve as skills."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agent_node import Workflow

__all__ = ["Echo", "Greeting", "echo", "greeter"]


class Greeting(BaseModel):
    text: str = ""
    reply: str = ""


#: A streamed model node (``write``) whose answer is the task's artifact.
WRITER_YAML = """
workflow:
  id: writer
  version: '1'
  start: write
  state_schema: {text: {type: string, default: ""}, reply: {type: string, default: ""}}
nodes:
  write: {type: model, prompt: "{{ state.text }}", output: reply, next: done}
  done: {type: end, output: [reply]}
"""


def greeter() -> Workflow:
    """One step that answers ``Hello! You said: <text>`` (the output: ``reply``)."""
    wf = Workflow("greeter", version="1")
    wf.state(Greeting)

    @wf.step
    async def greet(s: Greeting) -> dict[str, Any]:
        return {"reply": f"Hello! You said: {s.text}"}

    wf.end("done", output=["reply"])
    return wf


class Echo(BaseModel):
    text: str = ""
    reply: str = ""


def echo(prefix: str = "echo: ", *, end: bool = False) -> Workflow:
    """One step that answers ``<prefix><text>`` in ``reply``; with ``end``,
    an end node whose output is ``reply`` (else the task's output is the
    whole state)."""
    wf = Workflow("echo", version="1")
    wf.state(Echo)

    @wf.step
    async def answer(s: Echo) -> dict[str, Any]:
        return {"reply": f"{prefix}{s.text}"}

    if end:
        wf.end("done", output=["reply"])
    return wf
