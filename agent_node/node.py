"""An agent node: configuration in, a serving process out.

:class:`AgentNode` loads the skills' workflows, opens the store, starts a
worker engine (``scope="all"``: it runs and recovers every execution of its
store), builds the Agent Card and serves it, with the A2A JSON-RPC endpoint
at ``/a2a``, with uvicorn, and delivers push notifications. The listening
socket is bound before the card is built, so ``port: 0`` advertises the
port actually chosen.

A node serves mutual TLS (``tls:`` in its configuration). Plain HTTP is for
development only: it needs ``insecure_dev`` and a loopback listen address,
and says so loudly on every start. With TLS the node's policy
(``policy:``) decides who may call which skill and use the operator API;
without, nobody has an identity and everything is allowed. New certificate
files are taken while it serves, and at once on SIGHUP
(:mod:`agent_node.security.tls_reload`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from agent_node import node_grpc
from agent_node.config import NodeConfig
from agent_node.errors import ConfigError, StoreOutdated, UsageError
from agent_node.node_parts import NodeParts
from agent_node.stopping import stop_on_signals
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["INSECURE_WARNING", "AgentNode"]

log = logging.getLogger(__name__)
#: Seconds between checks that a node's supervising parent is alive.
ORPHAN_CHECK = 0.5

INSECURE_WARNING = (
    "WARNING: --insecure-dev: serving plain HTTP on {host} with no authentication;"
    " any local process can call this node. For development only."
)


class AgentNode:
    def __init__(self, config: NodeConfig, *, insecure_dev: bool = False) -> None:
        self.config = config
        #: Serve plain HTTP (loopback only) instead of mutual TLS.
        self.insecure_dev = insecure_dev
        self.workflows: dict[str, CompiledWorkflow] = {}
        #: Set when the node stopped because a newer agent-node upgraded its store.
        self.outdated: StoreOutdated | None = None

    def check_transport(self) -> None:
        """Refuse what the node must not serve: no TLS without ``insecure_dev``,
        plain HTTP on a non-loopback address, or both modes at once."""
        host = self.config.listen.host
        if self.config.tls is None and not self.insecure_dev:
            raise ConfigError(
                "no TLS settings: give `tls:` in the configuration or --cert-dir and"
                " --identity (see `agent-node certs`), or --insecure-dev for plain HTTP"
                " on loopback"
            )
        if self.config.tls is not None and self.insecure_dev:
            raise ConfigError("--insecure-dev serves plain HTTP: drop the TLS settings, or it")
        if self.insecure_dev and not _is_loopback(host):
            raise ConfigError(
                f"--insecure-dev serves only on a loopback address (127.0.0.1, ::1,"
                f" localhost), not {host!r}"
            )

    def load_workflows(self) -> dict[str, CompiledWorkflow]:
        """Load every skill's workflow; errors name the skill."""
        from agent_node.workflow.loading import load_workflow

        for skill in self.config.skills:
            try:
                self.workflows[skill.id] = load_workflow(self.config.workflow_ref(skill))
            except UsageError as exc:
                raise ConfigError(f"skill {skill.id!r}: {exc}") from None
        return self.workflows

    async def serve(
        self, ready: Callable[[NodeConfig], None] | None = None, *, parent: int | None = None
    ) -> None:
        """Serve until SIGINT or SIGTERM — or, with ``parent``, until the
        process of that id is no longer this one's parent, or until a newer
        agent-node upgraded the store (then :attr:`outdated` says so) — then
        stop cleanly."""
        from agent_node.connection_cap import cap_of
        from agent_node.transport import listening_socket, uvicorn_config, uvicorn_server

        self.check_transport()
        workflows = self.load_workflows()
        tls = self.config.ssl_context()  # before binding: bad files fail fast
        listen, cap = self.config.listen, cap_of(self.config.limits.max_connections)
        sock = listening_socket(listen.host, listen.port, cap=cap)
        grpc, grpc_port = node_grpc.bind(self.config)
        config = self.config.with_overrides(port=sock.getsockname()[1], grpc_port=grpc_port)
        parts = NodeParts.assemble(config, workflows, tls is not None)
        server = uvicorn_server(
            uvicorn_config(
                parts.app,
                tls,
                config.limits,
                identity_from_cn=config.identity_from_cn,
                http2=config.listen.http2,
            )
        )
        health = parts.health
        drain = config.telemetry.drain_seconds

        closing = False

        def on_stop() -> float:
            if closing:  # asked again while its steps finish: no more grace
                parts.runtime.engine.cut_stop_short()
            health.draining()
            return drain

        server.on_stop = on_stop
        _stop_when_outdated(self, parts, server)
        stop_reloads = _watch_certificates(config, parts.metrics)
        plain = None
        try:
            plain = _plain_metrics(config, parts.metrics)  # a port taken fails the start
            with stop_on_signals(server, on_stop):
                # The listener accepts first: /readyz says "starting" (and
                # other requests get 503) while the engine recovers.
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                orphaned = asyncio.create_task(_stop_when_orphaned(server, parent))
                metrics_port = plain and asyncio.create_task(plain[0].serve(sockets=[plain[1]]))
                grpc_stop: asyncio.Task[None] | None = None
                try:
                    if await _until_started(server, serving):
                        await parts.start()
                        if grpc is not None:
                            await node_grpc.serve(grpc, parts.grpc)
                        grpc_stop = asyncio.create_task(node_grpc.stop_with(server, grpc))
                        if not server.should_exit:
                            health.serving()
                            _freeze_startup_objects()
                            if ready is not None:
                                ready(config)
                    await serving
                    if grpc_stop is not None:
                        await grpc_stop
                finally:
                    server.should_exit = True
                    if plain and metrics_port:
                        plain[0].should_exit = True
                        await asyncio.wait([metrics_port])
                    for task in (orphaned, grpc_stop):
                        if task is not None:
                            task.cancel()
                    if not serving.done():
                        await asyncio.wait([serving])
        finally:
            await stop_reloads()
            if grpc is not None:
                await grpc.stop(0)  # stopped by now unless serving failed
            if server.force_exit:  # a second Ctrl-C while it served: no grace
                parts.runtime.engine.cut_stop_short()
            # Not before: uvicorn raises the signals it caught again once it
            # has stopped, and this handler sees them too.
            closing = True
            with stop_on_signals(server, on_stop):  # another, while its steps finish: no more
                await parts.close()
            sock.close()
            if plain:
                plain[1].close()


def _stop_when_outdated(node: AgentNode, parts: NodeParts, server: Any) -> None:
    """Once a newer agent-node upgraded the store (the engine stopped): the
    node's loops stop at once, and it drains and stops as on SIGTERM."""

    def outdated(error: StoreOutdated) -> None:
        node.outdated = error
        parts.quiet()
        server.handle_exit(signal.SIGTERM, None)

    parts.runtime.engine.outdated_hooks.append(outdated)


def _plain_metrics(config: NodeConfig, metrics: Any) -> tuple[Any, Any] | None:
    """The plain metrics port's server and socket (``telemetry.metrics.port``)."""
    settings = config.telemetry.metrics
    if metrics is None or settings.port is None:
        return None
    from agent_node.telemetry.metrics_http import bind_plain, plain_server

    return plain_server(metrics), bind_plain(settings.host, settings.port)


def _watch_certificates(config: NodeConfig, metrics: Any) -> Callable[[], Awaitable[None]]:
    """Look at the node's certificate files while it serves (new ones go to
    new handshakes; the metrics are told); returns the way to stop."""
    files = config.certificate_files()
    if files is None:
        return lambda: asyncio.sleep(0)
    from agent_node.security.tls_reload import Watching

    told = None if metrics is None else functools.partial(metrics.tls_certificate, "server")
    return Watching(files, told).stop


async def _until_started(server: Any, serving: asyncio.Task[None]) -> bool:
    """Wait until uvicorn accepts on its socket; False when it stopped first."""
    while not server.started:
        if serving.done() or server.should_exit:
            return False
        await asyncio.sleep(0.01)
    return True


async def _stop_when_orphaned(server: Any, parent: int | None) -> None:
    """Stop once ``parent`` is gone (this process is handed to another parent):
    a supervisor killed with SIGKILL leaves no node running behind it."""
    if parent is None:
        return
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK)
    log.warning("the parent process %d is gone: stopping", parent)
    server.should_exit = True


def _freeze_startup_objects() -> None:
    """Move what startup made (modules, schemas, workflows: ~50k objects) out of
    the cyclic collector's reach. A full collection walked all of them and
    stalled every request in flight for 50-90 ms, several times a minute
    under load; frozen, it walks only what requests left behind."""
    import gc

    gc.collect()
    gc.freeze()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
