"""Import references: ``"package.module:attr"`` and ``"path/to/file.py:attr"``.

A module reference is looked up next to ``base_dir`` first (``steps:fn``
finds ``base_dir/steps.py``; ``pkg.mod:fn`` finds the package ``base_dir/pkg``),
then on ``sys.path``. A file reference is relative to ``base_dir`` (or the
working directory) and is loaded under a module name derived from its
absolute path, kept in ``sys.modules``: importing it twice gives the same
objects (the file of the script this process runs is that script's
``__main__``, not run again). While a file runs, its directory is on
``sys.path`` so that it can import its siblings.

Importing a module for a definition is not running it as a script: a
user's file may end with an example run (``wf.run_sync(...)``) and no
``if __name__ == "__main__"`` guard. While a reference is imported, a run
(:func:`refuse_run_while_loading`) ends the module's top-level code right
there — what came before it, the workflow included, is defined; the run and
what follows it are skipped. A module whose import stopped that way is kept
as it is, so it is never executed twice. A module imported *by* the one
named cannot be cut short on its own: its stop would end the importer's
code too, so that import fails, saying why. When an event loop runs in the
calling thread, the module is imported from a thread of its own, where a
top-level ``asyncio.run(...)`` can still start (and be stopped).
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib
import importlib.util
import logging
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from agent_node.errors import ConfigError

__all__ = [
    "RunWhileLoading",
    "import_file",
    "import_object",
    "module_ref",
    "placed_ref",
    "refuse_run_while_loading",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_loading: contextvars.ContextVar[bool] = contextvars.ContextVar("loading", default=False)
#: Modules whose top-level code a run stopped: name -> "file:line" of the run.
_stopped: dict[str, str] = {}


class RunWhileLoading(BaseException):
    """A run at a module's top level while the module is imported for a
    definition: it ends that module's top-level code. A ``BaseException``, so
    that the module's own ``except Exception`` does not run on after it."""

    def __init__(self, what: str) -> None:
        frame = sys._getframe(2)
        while frame.f_back is not None and frame.f_code.co_name != "<module>":
            frame = frame.f_back
        self.module_name: str = frame.f_globals.get("__name__", "")
        self.module = sys.modules.get(self.module_name)
        self.where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        super().__init__(f"{what} at {self.where} is not run while its module is imported")


def refuse_run_while_loading(what: str) -> None:
    """Stop here if a module is being imported for a definition (see module doc)."""
    if _loading.get():
        raise RunWhileLoading(what)


_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FORMS = "use 'package.module:attr' or 'path/to/file.py:attr'"
#: The names of modules loaded from a file by path (``path.py:attr``).
_FILE_MODULE = "agent_node_ref_"


def module_ref(module_name: str) -> str | None:
    """How a reference names the module ``module_name`` for another process:
    its name, or its file's absolute path for a script (``__main__``) or a
    file loaded by path, whose module names no other process can import.
    None for such a module without a file (``python -c``, a notebook)."""
    if module_name != "__main__" and not module_name.startswith(_FILE_MODULE):
        return module_name
    path = getattr(sys.modules.get(module_name), "__file__", None)
    return str(Path(path).resolve()) if path else None


def placed_ref(ref: str) -> str:
    """``ref`` with a module that is loaded from a file named by that file:
    one function referred to as ``t05:step`` (imported), ``__main__:step``
    (run as a script) or by its path compares equal however it was loaded."""
    target, _, attr = ref.rpartition(":")
    if not _MODULE_NAME.match(target):
        return ref
    path = getattr(sys.modules.get(target), "__file__", None)
    return f"{Path(path).resolve()}:{attr}" if path else ref


def import_object(ref: str, base_dir: Path | None = None) -> Any:
    """The object ``ref`` names; a ``ConfigError`` says what failed and where."""
    return _importing(_resolve, ref, base_dir)


def import_file(path: str, base_dir: Path | None = None) -> ModuleType:
    """The module of the Python file at ``path``, imported as a reference to
    one of its objects would import it."""
    return _importing(_file_module, path, base_dir)


def _importing(resolve: Callable[[str, Path | None], T], ref: str, base_dir: Path | None) -> T:
    if not _loop_running():
        return _import_object(resolve, ref, base_dir)
    with ThreadPoolExecutor(1, thread_name_prefix="agent-node-import") as thread:
        return thread.submit(_import_object, resolve, ref, base_dir).result()


def _loop_running() -> bool:
    # No loop can run before asyncio is imported; not importing it here keeps
    # loading a workflow (and ``import agent_node``'s first use) cheap.
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _import_object(resolve: Callable[[str, Path | None], T], ref: str, base_dir: Path | None) -> T:
    token = _loading.set(True)
    try:
        return resolve(ref, base_dir)
    finally:
        _loading.reset(token)


def _resolve(ref: str, base_dir: Path | None) -> Any:
    if not isinstance(ref, str):
        raise ConfigError(f"an import reference must be a string, not {type(ref).__name__}")
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"bad import reference {ref!r}: {_FORMS}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _load_file(_file_path(target, base_dir), ref)
    elif _MODULE_NAME.match(target):
        module = _load_module(target, ref, base_dir)
    else:
        raise ConfigError(f"bad import reference {ref!r}: {target!r} is not a module name")
    return _attribute(module, attr, ref)


def _file_module(path: str, base_dir: Path | None) -> ModuleType:
    return _load_file(_file_path(path, base_dir), path)


def _file_path(target: str, base_dir: Path | None) -> Path:
    path = Path(target)
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


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
    except RunWhileLoading as stop:
        if stop.module_name != name or stop.module is None:
            raise _nested(stop, ref, name) from None
        # The import system dropped the half-run module: it is what we keep.
        sys.modules[name] = stop.module
        return _stopped_at(stop)
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
    script = sys.modules.get("__main__")
    if script is not None and _is_file(script, path):
        return script
    digest = hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    name = f"{_FILE_MODULE}{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
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
    except RunWhileLoading as stop:
        if stop.module_name != name:
            sys.modules.pop(name, None)
            raise _nested(stop, ref, str(path)) from None
        return _stopped_at(stop)
    except BaseException as exc:
        # A module that failed half way must not be found by the next import.
        sys.modules.pop(name, None)
        if isinstance(exc, Exception):
            raise ConfigError(f"{ref!r}: importing {str(path)!r} raised {_describe(exc)}") from exc
        raise
    return module


def _is_file(module: ModuleType, path: Path) -> bool:
    """Whether ``module`` was run from the file at ``path``: the script this
    process runs is the module its file refers to (loading it again would
    run its top-level code twice and make a second copy of its objects)."""
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and Path(file).resolve() == path


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
            stopped = _stopped.get(module.__name__)
            why = f" (its top-level code stops at the run at {stopped})" if stopped else ""
            raise ConfigError(f"{ref!r}: module has no attribute {missing!r}{why}") from None
    return value


def _stopped_at(stop: RunWhileLoading) -> ModuleType:
    if stop.module is None:
        raise ConfigError(f"importing {stop.module_name!r}: {stop}")
    _stopped[stop.module_name] = stop.where
    logger.debug("%s", stop)
    return stop.module


def _nested(stop: RunWhileLoading, ref: str, importing: str) -> ConfigError:
    return ConfigError(
        f"{ref!r}: importing {importing!r} stopped at {stop.where}: module"
        f" {stop.module_name!r} runs a workflow at its top level when imported."
        " Refer to that module itself, or put its run under"
        ' `if __name__ == "__main__":`'
    )


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
