"""The offline scripted model: the demo's three parts, and honest filler."""

from __future__ import annotations

import json
import subprocess
import sys

from agent_node.integrations import scripted

JUDGE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "j", "schema": {"properties": {"score": {}, "reason": {}}}},
}
QUESTION = "Why do AI agents that delegate to other agents need durable workflows?"


def system(text: str, asked: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": text}, {"role": "user", "content": asked}]


async def test_the_researcher_gives_notes_for_the_default_question() -> None:
    said = await scripted.complete(
        "scripted/demo", system("You are a researcher.", f"Question: {QUESTION}")
    )
    lines = said.text.splitlines()
    assert len(lines) == 4 and all(line.startswith("- ") for line in lines)
    assert "Idempotency keys" in said.text
    assert said.model == "scripted/demo" and said.cost is None


async def test_other_questions_get_notes_that_say_they_are_canned() -> None:
    said = await scripted.complete(
        "scripted/demo", system("Researcher.", "Question: Why is the sky blue?")
    )
    assert "Why is the sky blue?" in said.text and "canned" in said.text


async def test_the_writer_concludes_only_when_asked_to_revise() -> None:
    asked = f"Question: {QUESTION}\nNotes:\n- One fact\n- Two facts"
    first = await scripted.complete("scripted/demo", system("You are a writer.", asked))
    assert first.text == "One fact. Two facts."
    revise = asked + "\nAn editor reviewed your previous draft:\n- add a conclusion\nRevise it."
    second = await scripted.complete("scripted/demo", system("You are a writer.", revise))
    assert second.text.startswith("One fact. Two facts. In short, durable workflows")
    assert "add a conclusion" not in second.text


async def test_the_judge_scores_a_conclusion() -> None:
    low = await scripted.complete(
        "s/x", system("judge", "Rubric: r\n\nSubmission:\nFacts."), JUDGE_FORMAT
    )
    high = await scripted.complete(
        "s/x",
        system("judge", "Rubric: In short?\n\nSubmission:\nFacts. In short, yes."),
        JUDGE_FORMAT,
    )
    assert json.loads(low.text)["score"] == 2
    assert json.loads(high.text)["score"] == 5


async def test_anything_else_is_echoed_as_scripted() -> None:
    said = await scripted.complete("scripted/x", [{"role": "user", "content": "hi"}])
    assert said.text.startswith("[offline scripted model]") and "'hi'" in said.text


def test_the_litellm_client_answers_scripted_models_without_loading_litellm() -> None:
    program = (
        "import asyncio, sys\n"
        "from agent_node.integrations.llm import LlmClient\n"
        "asked = [{'role': 'user', 'content': 'hi'}]\n"
        "said = asyncio.run(LlmClient().complete('scripted/demo', asked))\n"
        "print(said.text.startswith('[offline scripted model]'), 'litellm' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["True", "False"], done.stderr
