"""The caller's own steps around the delegation."""

from __future__ import annotations

from typing import Any


async def write(state: Any) -> dict[str, str]:
    return {"brief": f"Brief on {state.topic} ({state.words} words read): {state.summary}"}


async def no_answer(state: Any) -> dict[str, str]:
    return {"brief": f"The worker did not answer about {state.topic} in time."}
