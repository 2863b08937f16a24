"""Which model the demo's agents use: an OpenAI-compatible server when one is
named (``--api-base``: llama.cpp's server, LM Studio, vLLM), else Ollama when
it answers, else the offline scripted model — saying which, and why."""

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
    #: The OpenAI-compatible server's base URL when it is used (``models.api_base``).
    api_base: str | None = None


async def choose_model(
    *, offline: bool, model: str, base: str | None, api_base: str | None = None
) -> Choice:
    """The OpenAI-compatible server at ``api_base`` when given and it
    answers (``model``, or the one model it serves); else Ollama's ``model``
    when Ollama answers at ``base`` and has it; else the offline scripted
    model, saying why."""
    if offline:
        return _scripted("--offline")
    if api_base is not None:
        return await _openai_compatible(model, api_base.rstrip("/"))
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


async def _openai_compatible(model: str, url: str) -> Choice:
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as http:
            answer = await http.get(f"{url}/models")
            answer.raise_for_status()
            served = [str(m.get("id")) for m in answer.json().get("data", []) if m.get("id")]
    except (httpx.HTTPError, ValueError, AttributeError):
        return _scripted(f"no OpenAI-compatible server answers at {url} (GET {url}/models)")
    if model not in served:
        if len(served) != 1:
            listed = ", ".join(served) or "none"
            return _scripted(f"the server at {url} has no {model!r} (it serves: {listed})")
        model = served[0]  # a llama.cpp server serves the one model it loaded
    note = f"OpenAI-compatible server at {url}, model {model}"
    return Choice(f"openai/{model}", note, False, api_base=url)


def _scripted(why: str) -> Choice:
    return Choice(
        SCRIPTED,
        f"the OFFLINE SCRIPTED MODEL ({why}): canned answers that show the flow, not a real model",
        True,
    )
