"""The tools a model node may call, as its ``tools`` names them, and the
names the model sees.

An entry is a tool's name (``search``: the one configured MCP server that
offers it) or ``server/tool`` (``web/search``: that server's, when several
offer a tool of that name). Everything after the first ``/`` is the tool's
name, so a tool whose own name holds a ``/`` is named with its server.

OpenAI-style APIs take a function name only if it matches
``^[a-zA-Z0-9_-]{1,64}$``, so the model sees each entry under its
*function name*: the entry itself when it fits; else ``server__tool``
for a named server, every other character outside that set made ``_``
(``github.create_issue`` → ``github_create_issue``), and a name longer
than 64 cut, with a digest of the entry to keep it apart. The compiler
refuses a node two of whose entries the model would see under one name.

Apart from the model node's spec because the MCP tool box (which calls the
entry behind a function name) and the start-up checks read it too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FUNCTION_NAME", "ToolRef", "problem"]

#: What OpenAI-style APIs accept as a function's name.
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_OUTSIDE = re.compile(r"[^a-zA-Z0-9_-]")
_LONGEST = 64
_DIGEST = 8


@dataclass(frozen=True, slots=True)
class ToolRef:
    """One entry of a model node's ``tools`` (see the module doc)."""

    entry: str
    #: The server named (None: whichever one server offers ``tool``).
    server: str | None
    tool: str

    @classmethod
    def parse(cls, entry: str) -> ToolRef:
        server, slash, tool = entry.partition("/")
        return cls(entry, server, tool) if slash else cls(entry, None, entry)

    @property
    def function(self) -> str:
        """The name the model sees (and calls it by)."""
        if FUNCTION_NAME.match(self.entry):
            return self.entry
        shown = self.tool if self.server is None else f"{self.server}__{self.tool}"
        shown = _OUTSIDE.sub("_", shown) or "_"
        if len(shown) <= _LONGEST:
            return shown
        digest = hashlib.sha256(self.entry.encode()).hexdigest()[:_DIGEST]
        return f"{shown[: _LONGEST - _DIGEST - 1]}_{digest}"


def problem(entries: Sequence[str]) -> str | None:
    """What is wrong with a node's ``tools``, or None: an entry naming no
    tool, or two entries the model would see under one function name."""
    seen: dict[str, str] = {}
    for entry in entries:
        ref = ToolRef.parse(entry)
        if not ref.tool or ref.server == "":
            return f"{entry!r} names no tool (write 'tool' or 'server/tool')"
        if ref.function in seen:
            return (
                f"{seen[ref.function]!r} and {entry!r} would both be shown to the model as"
                f" {ref.function!r}: name one with its server ('server/tool')"
            )
        seen[ref.function] = entry
    return None
