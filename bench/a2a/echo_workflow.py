"""The "ours" skill of the A2A SendMessage benchmark: echo the message's text.

One python step, then the end: the message's text parts fill ``text``, the
step sets ``reply``, and the A2A layer turns the final state into a completed
task whose ``result`` artifact starts with ``reply`` as a text part (see
``agent_node/a2a/server/taskview.py``). Every node's completion is committed to the
store before the task is answered, as for any workflow.
"""

from __future__ import annotations

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("echo", version="1", description="Replies with the text it was sent.")


@wf.state
class Echo(BaseModel):
    text: str = ""  # the message's text parts, joined
    reply: str = ""  # the artifact's text part


@wf.step(next=None)
async def echo(s: Echo) -> dict[str, str]:
    return {"reply": s.text}
