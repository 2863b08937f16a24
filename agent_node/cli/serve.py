"""``agent-node serve``: run an agent node from its configuration file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent_node.config import NodeConfig, load_config
from agent_node.errors import AgentNodeError, UsageError

from .common import (
    EXIT_FAILURE,
    EXIT_OUTDATED,
    EXIT_USAGE,
    handle_errors,
    run_async,
    tls_from_cert_dir,
)

if TYPE_CHECKING:
    from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["listening_on", "serve"]

#: The logger the engine reports failed executions on (``engine/runner.py``).
FAILURES = "agent_node.failures"
log = logging.getLogger("agent_node.serve")


@click.command()
@click.option(
    "--config",
    "config_path",
    default="agent-node.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The node's configuration file.",
)
@click.option("--host", default=None, help="Listen address (overrides the file).")
@click.option("--port", type=int, default=None, help="Listen port; 0 picks a free one.")
@click.option(
    "--grpc-port",
    type=int,
    default=None,
    help="Also serve A2A over gRPC on this port (0 picks a free one); needs agent-node[grpc].",
)
@click.option(
    "--bindings",
    default=None,
    help="The HTTP bindings to serve, comma-separated: jsonrpc, rest (default: both);"
    " none, with --grpc-port, for gRPC alone.",
)
@click.option("--store", default=None, help="Store URL (overrides the file).")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Serve mutual TLS with what `agent-node certs` wrote here (with --identity).",
)
@click.option("--identity", default=None, help="The NAME given to `agent-node certs issue`.")
@click.option(
    "--insecure-dev",
    is_flag=True,
    help="Serve plain HTTP without authentication, on a loopback address only (development).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=lambda: os.environ.get("AGENT_NODE_LOG_FORMAT", "text"),
    show_default="$AGENT_NODE_LOG_FORMAT, else text",
    help="json: every log line on stderr is a JSON object with the execution, task,"
    " node and trace ids it concerns.",
)
@click.option(
    "--parent-pid",
    type=int,
    default=None,
    hidden=True,
    help="Stop when the process PID (a supervisor: agent-node demo) is gone.",
)
@handle_errors
def serve(
    config_path: str,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    bindings: str | None,
    store: str | None,
    cert_dir: Path | None,
    identity: str | None,
    insecure_dev: bool,
    log_format: str,
    parent_pid: int | None,
) -> None:
    """Serve an agent node: its Agent Card, and A2A JSON-RPC at /a2a.

    With --grpc-port (or listen.grpc_port) it also serves A2A's gRPC
    binding on that port, with the same TLS, policy and limits.

    Runs every execution of its store as a worker, and prints a line on
    stderr for each task that fails. It serves HTTPS and requires client
    certificates (the file's tls: section, or --cert-dir and --identity);
    --insecure-dev serves plain HTTP on loopback instead, for development.

    Ctrl-C or SIGTERM stops it cleanly, exit status 0: no new connections,
    the requests in flight are answered, idle and keep-alive connections are
    closed at once. A request still running after 5 seconds is answered 503
    (Service Unavailable; a blocking send, JSON-RPC -32033 naming its task):
    its task stays in the store and carries on at the next start. A node
    whose store a newer agent-node upgraded stops so too, with exit status
    75: start it again with the new release.

    With --log-format json every line on stderr is a JSON object, from the
    first: a start that fails says why in one.
    """

    def start(as_json: bool) -> None:
        _serve(
            config_path,
            (host, port, grpc_port, bindings, store),
            (cert_dir, identity, insecure_dev),
            as_json=as_json,
            parent_pid=parent_pid,
        )

    if log_format != "json":
        start(as_json=False)
        return
    # Everything on stderr is JSON from the first line: a start that fails
    # (a bad file, a port taken, a certificate missing) too.
    from agent_node.telemetry.stderr_log import use_logs

    stop_logging = use_logs("json")
    try:
        start(as_json=True)
    except click.ClickException as exc:  # a flag wrong together with another
        log.error("%s", exc.format_message())
        raise click.exceptions.Exit(exc.exit_code) from None
    except (AgentNodeError, OSError) as exc:
        log.error("%s", exc)
        code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILURE
        raise click.exceptions.Exit(code) from None
    except click.exceptions.Exit:
        raise
    except Exception:
        log.exception("the node failed")
        raise click.exceptions.Exit(EXIT_FAILURE) from None
    finally:
        stop_logging()


def _serve(
    config_path: str,
    overrides: tuple[str | None, int | None, int | None, str | None, str | None],
    security: tuple[Path | None, str | None, bool],
    *,
    as_json: bool,
    parent_pid: int | None,
) -> None:
    """Serve the node (see :func:`serve`), with the command's overrides of its
    configuration (host, port, gRPC port, bindings, store) and security
    (certificate folder, identity, ``--insecure-dev``)."""
    from agent_node.node import INSECURE_WARNING, AgentNode

    host, port, grpc_port, bindings, store = overrides
    cert_dir, identity, insecure_dev = security

    tls = tls_from_cert_dir(cert_dir, identity)
    config = load_config(config_path).with_overrides(
        host=host,
        port=port,
        store=store,
        tls=tls,
        grpc_port=grpc_port,
        bindings=_bindings(bindings),
    )
    node = AgentNode(config, insecure_dev=insecure_dev)
    node.check_transport()

    def ready(actual: NodeConfig) -> None:
        from agent_node.store import default_store_url

        skills = ", ".join(node.workflows) or "none"
        where = f"skills: {skills}; store: {actual.store or default_store_url()}"
        listening = listening_on(actual)
        if as_json:  # stdout keeps its lines (tools read the URL there); stderr is JSON
            if insecure_dev:
                log.warning(INSECURE_WARNING.format(host=actual.listen.host))
            log.info("listening on %s; %s", listening, where)
        elif insecure_dev:
            click.secho(INSECURE_WARNING.format(host=actual.listen.host), fg="yellow", err=True)
        click.echo(f"agent node {actual.name!r} listening on {listening}")
        click.echo(f"agent card: {actual.url}/.well-known/agent-card.json")
        if actual.grpc_target is not None:
            click.echo(f"A2A gRPC: {actual.grpc_target}")
        if not as_json:
            click.echo(where, err=True)

    stop_logging = None if as_json else _log_failed_tasks(node.workflows)
    try:
        run_async(node.serve(ready, parent=parent_pid))
    finally:
        if stop_logging is not None:
            stop_logging()
    if node.outdated is not None:  # said at ERROR when found
        click.echo(f"agent node {config.name!r} stopped: its store is newer (exit {EXIT_OUTDATED})")
        raise click.exceptions.Exit(EXIT_OUTDATED)
    click.echo(f"agent node {config.name!r} stopped")


def listening_on(actual: NodeConfig) -> str:
    """Where the node listens, as bound (the port a 0 became), and its public
    URL after it when that differs (a proxy, a load balancer in front):
    ``https://127.0.0.1:8443 (public URL https://a.example.org)``. Before,
    the public URL alone was printed, as if the node listened there."""
    host = actual.listen.host
    shown = f"[{host}]" if ":" in host else host
    bound = f"{'https' if actual.tls else 'http'}://{shown}:{actual.listen.port}"
    return bound if actual.url == bound else f"{bound} (public URL {actual.url})"


def _log_failed_tasks(workflows: Mapping[str, CompiledWorkflow]) -> Callable[[], None]:
    """Print one line on stderr per task that fails (its id, skill and error)."""
    from agent_node.telemetry.stderr_log import TextFormatter

    skills = {workflow.ir.id: skill for skill, workflow in workflows.items()}

    def as_task_line(record: logging.LogRecord) -> bool:
        workflow = getattr(record, "workflow_id", "")
        record.msg = "task %s failed (skill %s): %s"
        record.args = (
            getattr(record, "execution_id", "?"),
            skills.get(workflow, workflow),
            getattr(record, "error", ""),
        )
        return True

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter())
    handler.addFilter(as_task_line)
    logger = logging.getLogger(FAILURES)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def stop() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return stop


def _bindings(flag: str | None) -> list[str] | None:
    """``--bindings`` as a list (``none``: the empty one); None when not given."""
    if flag is None:
        return None
    if flag.strip().lower() == "none":
        return []
    return [b.strip() for b in flag.split(",") if b.strip()]
