"""Step functions for workflow.yaml: async, taking the state, returning changes."""

from __future__ import annotations

from typing import Any


async def greet(state: Any) -> dict[str, Any]:
    return {"greeting": f"Hello, {state.name}!"}


async def count_letters(state: Any) -> dict[str, Any]:
    return {"letters": sum(ch.isalpha() for ch in state.name)}


async def count_vowels(state: Any) -> dict[str, Any]:
    return {"vowels": sum(ch in "aeiouAEIOU" for ch in state.name)}


async def long_name(state: Any) -> dict[str, Any]:
    return {"verdict": f"{state.name} is a long name ({state.letters} letters)"}


async def short_name(state: Any) -> dict[str, Any]:
    return {"verdict": f"{state.name} is a short name ({state.letters} letters)"}
