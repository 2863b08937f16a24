"""A configuration file read into its pydantic model (``agent-node.yaml``,
a card source): a file that cannot be read, is not YAML, or does not fit
is one :class:`~agent_node.errors.ConfigError` naming the file, the
configuration field that named it, and each mistake by its line and field.

Apart from :mod:`agent_node.config` (what the node's configuration holds)
because it reads any such file, and reading is another concern: the YAML
parser's errors, and the lines of the nodes pydantic's errors point at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent_node.errors import ConfigError
from agent_node.problems import Problem, problems

__all__ = ["MAX_MISTAKES", "read_model"]

M = TypeVar("M", bound=BaseModel)


def read_model(
    model: type[M], file: Path, *, field: str | None = None, missing: str = "", **extra: Any
) -> M:
    """``file`` as a ``model``; a mistake names the configuration ``field``
    that names the file, when one does, and a missing file says ``missing``."""
    import yaml

    where = f"field {field!r}: {file}" if field else str(file)
    try:
        text = file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except OSError as exc:
        hint = missing if isinstance(exc, FileNotFoundError) else ""
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}{hint}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse it"
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top, not {type(raw).__name__}")
    try:
        return model.model_validate({**raw, **extra})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_mistakes(exc, model, text)}") from None


#: Mistakes of one file shown at most (the rest are counted).
MAX_MISTAKES = 10


def _mistakes(exc: ValidationError, model: type[BaseModel], text: str) -> str:
    """Every mistake (up to :data:`MAX_MISTAKES`) with its line and field."""
    import yaml

    root = yaml.compose(text)
    found: list[tuple[int | None, Problem]] = [
        (_line_of(root, problem.loc), problem) for problem in problems(exc, model)[:MAX_MISTAKES]
    ]
    found.sort(key=lambda pair: pair[0] or 0)  # in the file's order; the whole file's first
    lines = []
    for line, problem in found:
        where = f"line {line}: " if line else ""
        lines.append(f"{where}field {problem.field or '(top)'!r}: {problem.message}")
    if exc.error_count() > MAX_MISTAKES:
        lines.append(f"and {exc.error_count() - MAX_MISTAKES} more")
    if len(lines) == 1:
        return lines[0]
    return f"{exc.error_count()} mistakes:\n" + "\n".join(f"  {line}" for line in lines)


def _line_of(node: Any, loc: tuple[int | str, ...]) -> int | None:
    """The line (1-based) of the YAML node at ``loc``, or of its nearest parent."""
    import yaml

    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
