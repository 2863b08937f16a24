"""Which model the demo's agents use: Ollama when it answers, else scripted."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from agent_node.integrations.llm import DEFAULT_OLLAMA
from agent_node.integrations.scripted import PREFIX

__all__ = ["SCRIPTED", "Choice", "choose_model"]

SCRIPTED = PREFIX + "demo"
PROBE_TIMEOUT = 1.5


@dataclass(frozen=True)
class Choice:
    model: str
    #: One line for the user: what is used, and why.
    note: str
    offline: bool
    #: Ollama's base URL when it is used.
    ollama: str | None = None


async def choose_model(*, offline: bool, model: str, base: str | None) -> Choice:
    """Ollama's ``model`` when Ollama answers at ``base`` and has it; else the
    offline scripted model, saying why."""
    if offline:
        return _scripted("--offline")
    url = (base or os.environ.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA).rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as http:
            answer = await http.get(f"{url}/api/tags")
            answer.raise_for_status()
            names = {m.get("name") for m in answer.json().get("models", [])}
    except (httpx.HTTPError, ValueError, AttributeError):
        return _scripted(f"no Ollama answers at {url}")
    wanted = model if ":" in model else f"{model}:latest"
    if model not in names and wanted not in names:
        return _scripted(f"Ollama at {url} has no {model!r} (ollama pull {model})")
    return Choice(f"ollama_chat/{model}", f"Ollama at {url}, model {model}", False, url)


def _scripted(why: str) -> Choice:
    return Choice(
        SCRIPTED,
        f"the OFFLINE SCRIPTED MODEL ({why}): canned answers that show the flow, not a real model",
        True,
    )
