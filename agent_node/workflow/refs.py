"""Import references: ``"package.module:attr"`` and ``"path/to/file.py:attr"``.

A module reference is looked up next to ``base_dir`` first (``steps:fn``
finds ``base_dir/steps.py``; ``pkg.mod:fn`` finds the package ``base_dir/pkg``),
then on ``sys.path``. A file reference is relative to ``base_dir`` (or the
working directory) and is loaded under a module name derived from its
absolute path, kept in ``sys.modules``: importing it twice gives the same
objects. While a file runs, its directory is on ``sys.path`` so that it can
import its siblings.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from agent_node.errors import ConfigError

__all__ = ["import_object"]

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FORMS = "use 'package.module:attr' or 'path/to/file.py:attr'"


def import_object(ref: str, base_dir: Path | None = None) -> Any:
    """The object ``ref`` names; a ``ConfigError`` says what failed and where."""
    if not isinstance(ref, str):
        raise ConfigError(f"an import reference must be a string, not {type(ref).__name__}")
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"bad import reference {ref!r}: {_FORMS}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else Path.cwd()) / path
        module = _load_file(path, ref)
    elif _MODULE_NAME.match(target):
        module = _load_module(target, ref, base_dir)
    else:
        raise ConfigError(f"bad import reference {ref!r}: {target!r} is not a module name")
    return _attribute(module, attr, ref)


def _load_module(name: str, ref: str, base_dir: Path | None) -> ModuleType:
    if base_dir is not None:
        local = base_dir / f"{name}.py"
        if "." not in name and local.is_file():
            return _load_file(local, ref)
        if (base_dir / name.split(".")[0]).is_dir():
            with _on_sys_path(base_dir.resolve()):
                return _import(name, ref)
    return _import(name, ref)


def _import(name: str, ref: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise ConfigError(f"{ref!r}: no module named {exc.name!r}") from None
        raise ConfigError(f"{ref!r}: importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"{ref!r}: importing {name!r} raised {_describe(exc)}") from exc


def _load_file(path: Path, ref: str) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"{ref!r}: no such file {str(path)!r}")
    digest = hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    name = f"agent_node_ref_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{ref!r}: {str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _on_sys_path(path.parent):
            spec.loader.exec_module(module)
    except BaseException as exc:
        # A module that failed half way must not be found by the next import.
        sys.modules.pop(name, None)
        if isinstance(exc, Exception):
            raise ConfigError(f"{ref!r}: importing {str(path)!r} raised {_describe(exc)}") from exc
        raise
    return module


def _attribute(module: ModuleType, attr: str, ref: str) -> Any:
    value: Any = module
    parts = attr.split(".")
    for index, part in enumerate(parts):
        if not part.isidentifier():
            raise ConfigError(f"bad import reference {ref!r}: {attr!r} is not an attribute path")
        try:
            value = getattr(value, part)
        except AttributeError:
            missing = ".".join(parts[: index + 1])
            raise ConfigError(f"{ref!r}: module has no attribute {missing!r}") from None
    return value


@contextmanager
def _on_sys_path(directory: Path) -> Iterator[None]:
    entry = str(directory)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
