"""State patches: what one step changed in an execution's state, as JSON.

A step's change is logged in its ``node_completed`` event and is all that a
step writes of the state (the whole state is written only as a snapshot now
and then, see :mod:`.snapshots`), so a patch must cost what the change
costs, not what the state costs. Three parts, each optional in the event's
``data``:

``patch``   ``{key: value}`` — top-level keys replaced (the whole value).
``append``  ``{key: tail}`` — keys whose list (or long string) grew at its
            end: only the new items (or characters) are logged. A list a step
            extends by one item costs one item, not the list.
``remove``  ``[key, …]`` — top-level keys that are gone (models that allow
            extra keys).

Top-level replacement, not RFC 7386 merge patches: a ``null`` value is a
value here (a state field may be ``None``), never a deletion.

Patches apply in ``seq`` order. Two parallel branches that read the same
state and commit one after the other therefore merge as they should: the
later one's keys apply over a state that includes the earlier one's — and
two appends to one list both land.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StatePatch", "apply_patch", "diff", "dumps", "fold", "patch_of"]


def _compact_json() -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``
    without its set-up per call: ``JSONEncoder.encode`` makes a new C
    encoder for every value (a third of the cost of a step's small event
    data); this makes one. It checks for no circular reference (shared by
    threads, it could keep no marks): one ends in a RecursionError."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return encoder.encode
    chunks = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    return lambda value: "".join(chunks(value, 0))


#: A value as compact JSON text (what every event's data and column holds).
dumps = _compact_json()
#: A string must be this long before its growth is logged as an append (a
#: short one that grows, a status say, reads better replaced).
_STRING_APPEND = 256


@dataclass(frozen=True, slots=True)
class StatePatch:
    """One change to a state (see the module doc)."""

    set: Mapping[str, Any] = field(default_factory=dict)
    append: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.append or self.remove)

    def event_fields(self) -> dict[str, Any]:
        """The patch as fields of an event's ``data``."""
        fields: dict[str, Any] = {}
        if self.set:
            fields["patch"] = dict(self.set)
        if self.append:
            fields["append"] = dict(self.append)
        if self.remove:
            fields["remove"] = list(self.remove)
        return fields


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> StatePatch:
    """The patch that turns ``old`` into ``new`` (JSON-shaped dicts). Values
    the two share (the same objects, as a state passed through a model
    keeps them) cost an identity check, whatever their size."""
    changed: dict[str, Any] = {}
    grown: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is value or before == value:
            continue
        tail = _tail(before, value)
        if tail is None:
            changed[key] = value
        else:
            grown[key] = tail
    gone = tuple(key for key in old if key not in new)
    return StatePatch(changed, grown, gone)


def _tail(before: Any, after: Any) -> Any:
    """What was added at the end of ``before`` to make ``after``, or None."""
    if isinstance(before, list) and isinstance(after, list):
        size = len(before)
        if 0 < size < len(after) and after[:size] == before:
            return after[size:]
    elif isinstance(before, str) and isinstance(after, str):
        if _STRING_APPEND <= len(before) < len(after) and after.startswith(before):
            return after[len(before) :]
    return None


def apply_patch(data: dict[str, Any], patch: StatePatch, *, owned: bool = False) -> None:
    """Apply ``patch`` to ``data`` in place. ``owned``: the lists in ``data``
    are nobody else's, so appends extend them (else they are copied)."""
    data.update(patch.set)
    for key, tail in patch.append.items():
        current = data[key]
        if owned and isinstance(current, list):
            current.extend(tail)
        else:
            data[key] = current + tail
    for key in patch.remove:
        data.pop(key, None)


def patch_of(event_data: Mapping[str, Any]) -> StatePatch | None:
    """The patch a ``node_completed`` event's data carries, if any."""
    if not ("patch" in event_data or "append" in event_data or "remove" in event_data):
        return None
    return StatePatch(
        event_data.get("patch") or {},
        event_data.get("append") or {},
        tuple(event_data.get("remove") or ()),
    )


def fold(base: dict[str, Any], events: Iterable[str | None], last: StatePatch | None = None) -> str:
    """The state ``base`` with the patches of ``events`` (the ``data`` of
    ``node_completed`` events, in ``seq`` order), then ``last``, applied; as
    JSON. ``base`` is the caller's no more: it is changed in place."""
    data = base
    for text in events:
        if not text or not _may_patch(text):
            continue
        patch = patch_of(json.loads(text))
        if patch is not None:
            apply_patch(data, patch, owned=True)
    if last is not None:
        apply_patch(data, last)
    return dumps(data)


def _may_patch(text: str) -> bool:
    """Cheap test before parsing: most steps change nothing."""
    return '"patch"' in text or '"append"' in text or '"remove"' in text


_MISSING = object()
