"""Which JSON media type an HTTP+JSON answer carries (§11.1).

A2A 1.0.1 names ``application/a2a+json`` for the binding (a SHOULD) and
accepts ``application/json``; clients differ in what they expect back. The
TCK checks that answers are ``application/json`` (HTTP_JSON-SVC-001) when it
sends plain JSON, and generic HTTP tooling parses ``application/json`` only.
So the answer follows the client:

* an ``Accept`` header that names ``application/a2a+json`` (at a quality no
  lower than ``application/json``'s) gets ``application/a2a+json``;
* with no such preference (no ``Accept``, ``*/*``, ``application/*``), a
  request whose body was ``application/a2a+json`` gets it back;
* everything else gets ``application/json``.

Answers say ``Vary: Accept`` so that a cache keeps the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["A2A_JSON", "JSON", "answer_media_type"]

A2A_JSON = "application/a2a+json"
JSON = "application/json"


def answer_media_type(headers: Mapping[str, str]) -> str:
    """The media type to answer a request with ``headers`` in (see the module doc)."""
    ranges = _accepted(headers.get("accept", ""))
    a2a, plain = ranges.get(A2A_JSON), ranges.get(JSON)
    if a2a is not None and a2a > 0 and (plain is None or a2a >= plain):
        return A2A_JSON
    if plain is None and a2a is None:
        sent = headers.get("content-type", "").split(";")[0].strip().lower()
        if sent == A2A_JSON:
            return A2A_JSON
    return JSON


def _accepted(accept: str) -> dict[str, float]:
    """The media ranges of an ``Accept`` header that name a JSON type, with
    their quality (malformed qualities count as 1, as most servers read them)."""
    ranges: dict[str, float] = {}
    for item in accept[:2000].split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        kind = kind.lower()
        if kind not in (A2A_JSON, JSON):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
        ranges[kind] = max(quality, ranges.get(kind, 0.0))
    return ranges
