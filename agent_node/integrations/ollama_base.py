"""Where Ollama models (``ollama_chat/…``, ``ollama/…``) are asked.

One ``models.api_base`` may name an OpenAI-compatible server (``…/v1``:
llama.cpp's, LM Studio's, vLLM's) for ``openai/`` models, while Ollama runs
elsewhere — a chain ``[openai/big, ollama_chat/small]`` asks both. So
Ollama's base URL is, in order:

* ``$OLLAMA_API_BASE`` as the operator set it;
* ``models.api_base``, unless it is an OpenAI-compatible server's (its path
  ends in ``/v1``, as Ollama's own never does);
* ``http://localhost:11434``.

The variable is also written for litellm, which asks some Ollama endpoints
(``/api/show``) there whatever ``api_base`` says (:func:`tell_litellm`); a
value this process wrote is not taken for the operator's by a later client.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

__all__ = ["DEFAULT_OLLAMA", "ollama_base", "tell_litellm"]

DEFAULT_OLLAMA = "http://localhost:11434"
_VARIABLE = "OLLAMA_API_BASE"
#: Values of the variable this process wrote, and those found in it before
#: it wrote them (the operator's).
_written: set[str] = set()
_found: set[str] = set()


def ollama_base(api_base: str | None) -> str:
    """The base URL Ollama models are asked at, ``models.api_base`` being
    ``api_base`` (see the module doc)."""
    chosen = _operators()
    if chosen is None and api_base and not _openai_compatible(api_base):
        chosen = api_base
    return (chosen or DEFAULT_OLLAMA).rstrip("/")


def tell_litellm(base: str) -> None:
    """Write ``base`` to ``$OLLAMA_API_BASE`` for litellm (process-wide)."""
    if os.environ.get(_VARIABLE) != base:
        _operators()  # what the operator set is remembered before it is replaced
        _written.add(base)
        os.environ[_VARIABLE] = base


def _operators() -> str | None:
    value = os.environ.get(_VARIABLE)
    if not value:
        return None
    if value not in _written:
        _found.add(value)
        return value
    return value if value in _found else None


def _openai_compatible(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/v1")
