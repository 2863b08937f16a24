"""The `book` skill: asks when (INPUT_REQUIRED over A2A), then books."""

from __future__ import annotations

from pydantic import BaseModel

from agent_node import Workflow

wf = Workflow("book", version="1", description="Asks when you want to travel, then books it.")


@wf.state
class Booking(BaseModel):
    text: str = ""  # the place, from the message's text
    dates: str | None = None
    reply: str = ""  # becomes the text part of the task's artifact


wf.wait("ask", input="When do you want to go to {{ state.text }}?", output="dates")


@wf.step
async def book(s: Booking) -> dict[str, str]:
    return {"reply": f"Booked {s.text} for {s.dates}."}
