"""Which models litellm's price map names, known without importing litellm.

An ``openai/<model>`` at ``models.api_base`` may be a local server's model
(llama.cpp's, LM Studio's: free) or a priced one behind another URL (a
proxy, a gateway: ``openai/gpt-4o-mini`` costs what OpenAI charges whatever
the URL says). The client prices it by litellm's map when the map names it,
else at 0 — and asks the map without loading litellm (~3 s, ~175 MB) for a
name it lacks, so a model node answering from a local server never loads
litellm to learn that its model is free.

The names are read once from the map litellm ships
(``model_prices_and_context_window_backup.json``: the map it loads itself
offline, ``LITELLM_LOCAL_MODEL_COST_MAP=True``), found by the package's
location, not by importing it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

__all__ = ["mapped"]

_MAP = "model_prices_and_context_window_backup.json"
#: The map's model names, once read (None: not read yet).
_names: frozenset[str] | None = None


async def mapped(model: str) -> bool:
    """Whether litellm's map may name ``model`` (``provider/name`` or
    ``name``); True when the map cannot be read (litellm is then asked)."""
    names = _names if _names is not None else await asyncio.to_thread(_read)
    if not names:
        return True
    return model in names or model.split("/", 1)[-1] in names


def _read() -> frozenset[str]:
    global _names
    spec = importlib.util.find_spec("litellm")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    names: frozenset[str] = frozenset()
    for folder in folders:
        try:
            names = frozenset(json.loads((Path(folder) / _MAP).read_bytes()))
            break
        except (OSError, ValueError, TypeError):
            continue
    _names = names
    return names
