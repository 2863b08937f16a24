"""What every command shares: the ``--store`` option, error translation, JSON input.

Errors are translated at this one boundary: an :class:`AgentNodeError` (or a
file the command could not read) becomes one red ``error: ...`` line on
stderr and an exit code — 2 for a usage mistake, 1 for a runtime failure —
never a traceback. A process that serves (``serve``, ``worker``) exits 75
(EX_TEMPFAIL) when a newer agent-node upgraded its store under it: its
supervisor starts it again, with the new release.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from agent_node.errors import AgentNodeError, ConfigError, UnknownExecution, UsageError
from agent_node.printable import printable
from agent_node.store import Store, default_store_url, store_from_url

if TYPE_CHECKING:  # imported where used: commands that only read a store skip them (~0.15 s)
    from agent_node.config import TlsSettings
    from agent_node.runtime import Runtime
    from agent_node.workflow.compiled import CompiledWorkflow

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OUTDATED",
    "EXIT_USAGE",
    "fail",
    "handle_errors",
    "load_target",
    "open_store",
    "parse_json",
    "parse_json_object",
    "run_async",
    "started_runtime",
    "store_option",
    "tls_from_cert_dir",
]

P = ParamSpec("P")
T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
#: A newer agent-node upgraded the store under a serving process (sysexits' EX_TEMPFAIL).
EXIT_OUTDATED = 75

store_option = click.option(
    "--store",
    "store_url",
    default=default_store_url,
    show_default="$AGENT_NODE_STORE, else sqlite:///.agent-node/agent-node.db",
    metavar="URL",
    help="Where executions live: memory://, sqlite:///path.db or postgresql://...",
)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``; what
    the message holds from outside (a peer's words) cannot move the terminal."""
    click.secho(f"error: {printable(message, lines=True)}", fg="red", err=True)
    raise click.exceptions.Exit(code)


def handle_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Turn the package's errors into one clear line and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except UsageError as exc:
            fail(str(exc), EXIT_USAGE)
        except AgentNodeError as exc:
            fail(str(exc), EXIT_FAILURE)
        except BrokenPipeError:
            raise  # `| head` stopped reading: click exits quietly, as other tools do
        except OSError as exc:
            fail(str(exc), EXIT_FAILURE)

    return wrapper


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def open_store(url: str, *, create: bool = False) -> AsyncIterator[Store]:
    """An open store, closed on the way out whatever happens.

    A command that only reads never creates a store (a typo in ``--store``
    is a :class:`MissingStore`, not an empty table), and an execution it
    cannot find is reported with the store it looked in.
    """
    store = store_from_url(url, create=create)
    try:
        await store.open()
        yield store
    except UnknownExecution as exc:
        if exc.store is not None:
            raise
        raise UnknownExecution(exc.execution_id, store=url) from None
    finally:
        await store.close()


@asynccontextmanager
async def started_runtime(
    url: str, workflows: Iterable[CompiledWorkflow] = (), *, create: bool = True, **options: Any
) -> AsyncIterator[Runtime]:
    """A started :class:`Runtime` that knows ``workflows`` before it claims
    anything; closed (engine stopped, store closed) on the way out.

    ``create=False`` for a command that only finishes what a store holds
    (``resume``); otherwise a new SQLite file is created, and said where.
    """
    store = store_from_url(url, create=create)
    new_file = _new_file(store)
    from agent_node.runtime import Runtime

    runtime = Runtime(store, **options)
    for workflow in workflows:
        runtime.workflows.add(workflow)
    try:
        await runtime.start()
        if new_file is not None:
            click.echo(f"created a new store at {new_file}", err=True)
        yield runtime
    finally:
        await runtime.close()


def _new_file(store: Store) -> Path | None:
    """The absolute path of a SQLite store's file that does not exist yet."""
    path = getattr(store, "path", None)
    return path.absolute() if isinstance(path, Path) and not path.exists() else None


def parse_json(text: str, option: str) -> Any:
    """``text`` as JSON; ``@path`` reads the JSON from a file."""
    source = option
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{option}: cannot read {source!r}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    value = parse_json(text, option)
    if not isinstance(value, dict):
        raise ConfigError(f"{option} must be a JSON object, not {type(value).__name__}")
    return value


def load_target(ref: str) -> CompiledWorkflow:
    """Load a workflow and record a reference to it that other processes can load.

    A workflow loaded from ``path/to/file.py:attr`` lives in a module named
    after its path, which no other process can import; an absolute path can.
    """
    from agent_node.workflow.loading import load_workflow

    compiled = load_workflow(ref)
    return dataclasses.replace(compiled, ref=_portable_ref(ref))


def _portable_ref(ref: str) -> str:
    target, colon, attr = ref.rpartition(":")
    is_file = not colon or target.endswith(".py") or "/" in target or "\\" in target
    if not is_file:
        return ref
    if not colon:
        return str(Path(ref).resolve())
    return f"{Path(target).resolve()}:{attr}"


def tls_from_cert_dir(cert_dir: Path | None, identity: str | None) -> TlsSettings | None:
    """``--cert-dir DIR --identity NAME``: what ``agent-node certs issue NAME`` wrote."""
    if (cert_dir is None) != (identity is None):
        raise click.UsageError("--cert-dir and --identity go together")
    if cert_dir is None or identity is None:
        return None
    folder = cert_dir.resolve()
    from agent_node.config import TlsSettings

    return TlsSettings(
        cert=str(folder / f"{identity}.pem"),
        key=str(folder / f"{identity}-key.pem"),
        trust=[str(folder / "ca.pem")],
    )
