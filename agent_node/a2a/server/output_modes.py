"""``acceptedOutputModes``: the media types a client takes, and our parts' own.

A send's ``configuration.acceptedOutputModes`` is kept with the new task
(its ``metadata.acceptedOutputModes``) and applies to the task wherever it
is shown — the send's answer, GetTask, ListTasks, streams, pushes: a part
in a mode the client does not accept is left out, and an artifact left
without parts is dropped. A completed task none of whose output can be
given in an accepted mode is shown FAILED, saying which modes it has and
which the client accepts. No list, or an empty one, accepts everything.

A part's mode is its ``mediaType``, else ``text/plain`` for text,
``application/json`` for data and ``application/octet-stream`` for bytes
or a URL. Accepted modes may be wildcards (``*/*``, ``text/*``);
parameters (``; charset=…``) and case are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_node.a2a.protocol.models import Artifact, Part

__all__ = ["METADATA_KEY", "accepts", "part_mode", "shown"]

#: Where a task keeps the modes its first send accepted.
METADATA_KEY = "acceptedOutputModes"


def part_mode(part: Part) -> str:
    """The media type ``part`` is in."""
    if part.media_type:
        return part.media_type
    if part.text is not None:
        return "text/plain"
    return "application/json" if part.data is not None else "application/octet-stream"


def accepts(accepted: Sequence[str], mode: str) -> bool:
    """Whether a client that accepts ``accepted`` takes a part in ``mode``."""
    kind = _bare(mode)
    major = kind.split("/", 1)[0]
    for entry in map(_bare, accepted):
        if entry in (kind, "*/*", "*") or entry == f"{major}/*":
            return True
    return False


def shown(artifacts: list[Artifact], accepted: Sequence[str]) -> tuple[list[Artifact], list[str]]:
    """``artifacts`` as a client accepting ``accepted`` gets them, and the
    modes of the parts left out (empty when nothing was)."""
    kept: list[Artifact] = []
    dropped: list[str] = []
    for artifact in artifacts:
        parts: list[Part] = []
        for part in artifact.parts:
            mode = part_mode(part)
            if accepts(accepted, mode):
                parts.append(part)
            else:
                dropped.append(mode)
        if parts:
            kept.append(artifact.model_copy(update={"parts": parts}))
    return kept, sorted(set(dropped))


def _bare(mode: str) -> str:
    return mode.split(";", 1)[0].strip().lower()
