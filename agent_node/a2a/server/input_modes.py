"""The media types a skill takes, checked on every part of a message.

A skill takes the ``inputModes`` its card entry declares, else the card's
``defaultInputModes`` (``text/plain`` and ``application/json`` unless the
card source says otherwise): exactly what the card shows a client. A new
task's message and a follow-up message are checked part by part before
anything is made — no task, no push config, no history entry — and a part
the skill does not take is refused with ContentTypeNotSupported (-32005;
HTTP 415, gRPC ``INVALID_ARGUMENT``), never dropped on the way to the
state. The error names each refused part (its index and media type) and
what the skill takes, in its message and in its ErrorInfo metadata
(``skill``, ``parts``, ``mediaTypes``, ``inputModes``).

A part's media type is its ``mediaType`` whatever its kind (A2A 1.0: the
field applies to every part), else ``text/plain`` for text,
``application/json`` for data, and ``application/octet-stream`` for a file
(``raw`` or ``url``): a file whose type is not said is only bytes to us,
so a skill takes it if it declares ``application/octet-stream`` or a
wildcard covering it. Declared modes may be wildcards (``image/*``,
``*/*``); parameters (``; charset=utf-8``) and case are ignored on both
sides (:mod:`agent_node.a2a.server.output_modes`).

A text part is text to the workflow whatever text type it names: a skill
that takes ``text/plain`` takes a text part labelled ``text/markdown``,
``text/html`` or any other ``text/*`` (chat clients label what their users
type as Markdown; refusing it would refuse the text the skill reads). A
file or data part is held to its type.

File parts reach a workflow through its ``message`` state field (the whole
message, :mod:`agent_node.a2a.server.taskview`); a skill that takes them
declares their types, e.g. ``inputModes: [text/plain, image/*]``. A
follow-up is checked against the modes of the skills that run its task's
workflow (all of them, when several skills share one workflow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from agent_node.a2a.protocol.errors import ContentTypeNotSupported
from agent_node.a2a.protocol.models import Message, Part
from agent_node.a2a.server.output_modes import accepts, part_mode
from agent_node.card_source import CardSource

__all__ = ["DEFAULT_INPUT_MODES", "check_parts", "input_modes_of"]

#: What a skill takes when nothing is declared: the card source's default.
DEFAULT_INPUT_MODES: tuple[str, ...] = tuple(
    CardSource.model_fields["default_input_modes"].get_default(call_default_factory=True)
)


def input_modes_of(source: CardSource, skills: Iterable[str]) -> dict[str, list[str]]:
    """The modes each of ``skills`` takes, as the card built from ``source`` declares them."""
    modes: dict[str, list[str]] = {}
    for skill in skills:
        text = source.skills.get(skill)
        declared = text.input_modes if text and text.input_modes else source.default_input_modes
        modes[skill] = list(declared)
    return modes


def _takes(modes: Sequence[str], part: Part, mode: str) -> bool:
    """Whether a skill taking ``modes`` takes ``part`` (in ``mode``)."""
    if accepts(modes, mode):
        return True
    return (
        part.text is not None
        and mode.split("/", 1)[0].strip().lower() == "text"
        and accepts(modes, "text/plain")
    )


def check_parts(
    message: Message, skills: Sequence[str], by_skill: Mapping[str, Sequence[str]]
) -> None:
    """Raise :class:`ContentTypeNotSupported` unless every part of ``message``
    is in a mode one of ``skills`` takes (``by_skill``: skill id → its modes;
    a skill not in it takes :data:`DEFAULT_INPUT_MODES`)."""
    modes = list(dict.fromkeys(m for s in skills for m in by_skill.get(s, DEFAULT_INPUT_MODES)))
    modes = modes or list(DEFAULT_INPUT_MODES)
    refused = [
        (index, mode, part.text is None and part.data is None and not part.media_type)
        for index, part in enumerate(message.parts)
        if not _takes(modes, part, mode := part_mode(part))
    ]
    if not refused:
        return
    named = ", ".join(
        f"part {index} ({mode}{': a file without a mediaType' if unnamed else ''})"
        for index, mode, unnamed in refused
    )
    who = f"skill {', '.join(map(repr, skills))}" if skills else "this task's skill"
    raise ContentTypeNotSupported(
        f"{who} does not take {named}: it takes {', '.join(modes)}",
        metadata={
            "skill": ",".join(skills),
            "parts": ",".join(str(index) for index, _, _ in refused),
            "mediaTypes": ",".join(dict.fromkeys(mode for _, mode, _ in refused)),
            "inputModes": ",".join(modes),
        },
    )
