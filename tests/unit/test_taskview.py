"""How a message becomes a new task's input state, and what a misfit is told."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.a2a.protocol.models import Message, Part, Role
from agent_node.a2a.server.taskview import state_from_message


class Greeting(BaseModel):  # examples/hello's state: fields, no `text`
    name: str
    greeting: str = ""


class Booking(BaseModel):
    text: str
    dates: str | None = None


def message(*parts: Part) -> Message:
    return Message(message_id="m1", role=Role.USER, parts=list(parts))


def test_text_for_a_skill_that_reads_none_says_to_send_a_data_part() -> None:
    with pytest.raises(InvalidParams) as refused:
        state_from_message(Greeting, message(Part(text='{"name": "Ada Lovelace"}')))
    assert str(refused.value) == (
        "the message does not fit the skill's input: name: Field required"
        ' (this skill reads no text: send its fields as a data part, {"data": {"name": …}})'
    )
    ada = state_from_message(Greeting, message(Part(data={"name": "Ada"})))
    assert ada == {"name": "Ada", "greeting": ""}


def test_a_misfit_of_a_skill_that_reads_text_or_of_data_gets_no_such_hint() -> None:
    with pytest.raises(InvalidParams) as refused:
        state_from_message(Booking, message(Part(data={"dates": "May"})))
    assert str(refused.value) == "the message does not fit the skill's input: text: Field required"
    with pytest.raises(InvalidParams) as wrong_type:
        state_from_message(Greeting, message(Part(data={"name": 42})))
    assert "data part" not in str(wrong_type.value)
    assert state_from_message(Booking, message(Part(text="Lisbon")))["text"] == "Lisbon"
