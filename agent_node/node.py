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
without, nobody has an identity and everything is allowed.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent_node import node_grpc
from agent_node.config import NodeConfig
from agent_node.errors import ConfigError, UsageError
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
        process of that id is no longer this one's parent — then stop cleanly."""
        from agent_node.transport import listening_socket, uvicorn_config, uvicorn_server

        self.check_transport()
        workflows = self.load_workflows()
        tls = self.config.ssl_context()  # before binding: bad files fail fast
        sock = listening_socket(self.config.listen.host, self.config.listen.port)
        grpc, grpc_port = node_grpc.bind(self.config)
        config = self.config.with_overrides(port=sock.getsockname()[1], grpc_port=grpc_port)
        parts = _Parts.assemble(config, workflows, tls is not None)
        server = uvicorn_server(
            uvicorn_config(parts.app, tls, config.limits, identity_from_cn=config.identity_from_cn)
        )
        health = parts.health
        drain = config.telemetry.drain_seconds

        def on_stop() -> float:
            health.draining()
            return drain

        server.on_stop = on_stop
        plain = None
        try:
            plain = _plain_metrics(config, parts.metrics)  # a port taken fails the start
            with _stop_on_signals(server, on_stop):
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
            if grpc is not None:
                await grpc.stop(0)  # stopped by now unless serving failed
            await parts.close()
            sock.close()
            if plain:
                plain[1].close()


@dataclass
class _Parts:
    """What a serving node is made of, started and closed in order."""

    runtime: Any
    tasks: Any
    app: Any
    http: Any
    watchdog: Any
    tools: Any
    llm: Any
    pushes: Any
    #: The gRPC servicer when ``listen.grpc_port`` is set.
    grpc: Any = None
    delegator: Any = None
    #: The probes' view of the node (:mod:`agent_node.telemetry.health`).
    health: Any = None
    #: :class:`~agent_node.telemetry.metrics.NodeMetrics`, unless turned off.
    metrics: Any = None
    #: :class:`~agent_node.telemetry.traces.Traces`, when traces are on.
    traces: Any = None  # traces (issue 17)
    #: ``retention:``, and the task that prunes by it.
    retention: Any = None
    _pruning: asyncio.Task[None] | None = None

    @classmethod
    def assemble(
        cls, config: NodeConfig, workflows: dict[str, CompiledWorkflow], secure: bool
    ) -> _Parts:

        from agent_node.a2a.peers.client import http_client
        from agent_node.a2a.peers.delegator import PeerDelegator
        from agent_node.a2a.peers.directory import Directory
        from agent_node.a2a.peers.push_receiver import PUSH_PATH, PushReceiver
        from agent_node.a2a.peers.watchdog import Watchdog
        from agent_node.a2a.server.app import Guard, create_app
        from agent_node.a2a.server.card import CardDocument, build_card, offers_extended_card
        from agent_node.a2a.server.extended_card import ExtendedCard
        from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
        from agent_node.a2a.server.ops import ops_routes
        from agent_node.a2a.server.push import PushSender
        from agent_node.a2a.server.rest import rest_endpoint
        from agent_node.a2a.server.tasks import TaskService
        from agent_node.engine.executor import Executor
        from agent_node.integrations.llm import LlmClient
        from agent_node.integrations.mcp import McpPool, McpToolBox
        from agent_node.nodes.delegate import DelegateExecutor
        from agent_node.nodes.model import ModelExecutor
        from agent_node.nodes.tool import ToolExecutor
        from agent_node.runtime import Runtime
        from agent_node.security.authn import authenticator
        from agent_node.security.authz import Policy
        from agent_node.telemetry.health import Health
        from agent_node.telemetry.metrics import NodeMetrics
        from agent_node.telemetry.metrics_http import counted, metrics_route
        from agent_node.telemetry.traces import start_traces  # traces (issue 17)
        from agent_node.transport import caller_of

        outgoing = config.client_ssl_context()
        http = http_client(
            outgoing,
            timeout=30.0,
            identity_from_cn=config.identity_from_cn,
            bare=config.client_ssl_context(certificate=False),
        )
        directory = Directory(config.peers, http, trust=config.trust_paths())
        delegator = PeerDelegator(
            directory,
            http,
            push_url=config.url + PUSH_PATH,
            secret=_secret(config),
            grpc=functools.partial(node_grpc.peers, config, outgoing),
        )
        pool = McpPool.from_config(config)  # opens nothing until a tool is first called
        llm = LlmClient(config.models)
        models = ModelExecutor(llm, McpToolBox(pool))
        executors: dict[str, Executor] = {
            "delegate": DelegateExecutor(delegator),
            "tool": ToolExecutor(pool),
            "model": models,
        }
        runtime = Runtime(config.store, node=config.name, scope="all", executors=executors)
        llm.backends.shared = runtime.store.slots  # models.backends with shared: true
        for workflow in workflows.values():
            runtime.workflows.add(workflow)
        card = CardDocument.of(_signed(config, build_card(config, workflows)))
        default = next((s.id for s in config.skills if s.default), None)
        authn = authenticator(config.auth, config.path, config.name)
        # Callers are known (and the policy applies) with TLS or another scheme.
        known = secure or authn is not None
        policy = Policy.of(config.policy) if known else Policy.open()
        tasks = TaskService(runtime, workflows, default_skill=default, policy=policy)
        if offers_extended_card(config, workflows):
            extended = _signed(config, build_card(config, workflows, extended=True))
            tasks.extended_card = ExtendedCard(extended, policy)
        if config.push.enabled:
            # The engine's own name: a restart frees at once what a dead
            # process of this node held (Engine.recover), pushes included.
            owner = str(runtime.engine.owner)
            tasks.push = PushSender(
                runtime.store, tasks.render_push, config.push, owner=owner, tls=outgoing
            )
        capabilities = dict(card.card["capabilities"])
        served = config.listen.bindings
        endpoint, rest = None, None
        if "jsonrpc" in served:
            endpoint = jsonrpc_endpoint(tasks, capabilities=capabilities, limits=config.limits)
        if "rest" in served:
            rest = rest_endpoint(tasks, capabilities=capabilities, limits=config.limits)
        pushes = PushReceiver(runtime, delegator, require_identity=secure)
        guard = Guard(
            require_identity=known,
            card_public=config.card_public,
            max_concurrent_per_caller=config.limits.max_concurrent_per_caller,
            authn=authn,
            open_paths=frozenset({PUSH_PATH}) if pushes.anonymous else frozenset(),
        )
        posts = {PUSH_PATH: pushes.endpoint}
        health = Health(runtime.store, runtime.engine)
        routes = ops_routes(runtime, policy)
        metrics = None
        if config.telemetry.metrics.enabled:
            metrics = NodeMetrics(runtime.store, runtime.workflows, config.name)
            runtime.engine.claimed_hooks.append(metrics.claimed)
            routes.append(metrics_route(metrics, lambda r: policy.is_operator(caller_of(r.scope))))
        app = create_app(
            card,
            endpoint,
            rest=rest,
            posts=posts,
            routes=routes,
            guard=guard,
            jwks=_jwks(config),
            health=health,
        )
        if metrics is not None:
            app = counted(app, metrics)
        # traces (issue 17)
        traces = start_traces(config.telemetry, node=config.name, runtime=runtime)
        if traces is not None:
            app = traces.asgi(app)
            traces.instrument(http)
        parts = cls(runtime, tasks, app, http, Watchdog(runtime, delegator), pool, llm, pushes)
        parts.delegator = delegator
        parts.health = health
        parts.metrics = metrics
        parts.traces = traces  # traces (issue 17)
        parts.retention = config.retention
        if config.listen.grpc_port is not None:
            from agent_node.a2a.server.grpc.service import A2AService

            parts.grpc = A2AService(
                tasks,
                capabilities=capabilities,
                limits=config.limits,
                guard=guard,  # one count of requests in flight per caller, every binding
                secure=known,
                identity_from_cn=config.identity_from_cn,
            )
        return parts

    async def start(self) -> None:
        await self.runtime.start()
        if self.tasks.push is not None:
            await self.tasks.push.start()
        await self.watchdog.start()
        if self.retention is not None:
            from agent_node.store.retention import keep_for

            settings = self.retention
            self._pruning = asyncio.create_task(
                keep_for(
                    self.runtime.store,
                    settings.finished,
                    every=settings.every,
                    batch=settings.batch,
                ),
                name="agent-node retention",
            )

    async def close(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
            await asyncio.wait([self._pruning])
        await self.watchdog.close()
        await self.pushes.close()
        if self.tasks.push is not None:
            await self.tasks.push.close()
        await self.runtime.close()
        if self.traces is not None:  # traces (issue 17)
            await self.traces.close()
        if self.metrics is not None:
            self.metrics.close()
        await self.tools.aclose()  # after the runtime: no node may open a session now
        await self.llm.aclose()
        if self.delegator is not None:
            await self.delegator.aclose()
        await self.http.aclose()


def _signed(config: NodeConfig, card: dict[str, Any]) -> dict[str, Any]:
    """The card, signed with the node's TLS key when it serves TLS (``sign_card``);
    the signature's ``jku`` is the JWK Set the node serves (:func:`_jwks`)."""
    if config.tls is None or not config.sign_card:
        return card
    from agent_node.a2a.peers.signing import sign_card
    from agent_node.a2a.protocol.card_payload import spec_disagreements
    from agent_node.a2a.server.card import JWKS_PATH

    for path in spec_disagreements(card):
        log.warning(
            "the card's %s is empty: a2a-sdk and @a2a-js/sdk will not verify its signature"
            " (they drop empty values the spec keeps); give it a value",
            path,
        )
    jku = config.url + JWKS_PATH
    return sign_card(card, config.path(config.tls.key), config.path(config.tls.cert), jku=jku)


def _jwks(config: NodeConfig) -> bytes | None:
    """The JWK Set of the card signature's key, as JSON; None when the card is unsigned."""
    if config.tls is None or not config.sign_card:
        return None
    import json

    from agent_node.a2a.peers.signing import jwks_of

    return json.dumps(jwks_of(config.path(config.tls.cert))).encode()


def _secret(config: NodeConfig) -> bytes:
    """The key of this node's delegation tokens: from its TLS key, so replicas
    sharing an identity agree; from its name without TLS (development only)."""
    import hashlib

    material = config.name.encode()
    if config.tls is not None:
        material = config.path(config.tls.key).read_bytes()
    return hashlib.sha256(b"agent-node delegation tokens\0" + material).digest()


def _plain_metrics(config: NodeConfig, metrics: Any) -> tuple[Any, Any] | None:
    """The plain metrics port's server and socket (``telemetry.metrics.port``)."""
    settings = config.telemetry.metrics
    if metrics is None or settings.port is None:
        return None
    from agent_node.telemetry.metrics_http import bind_plain, plain_server

    return plain_server(metrics), bind_plain(settings.host, settings.port)


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


@contextmanager
def _stop_on_signals(server: Any, on_stop: Callable[[], float]) -> Iterator[None]:
    """SIGINT/SIGTERM ask uvicorn to stop, also before it installs its own
    handlers. uvicorn re-raises the signal that stopped it after restoring
    the handlers it found — ours — so the node goes on to close its runtime
    instead of dying half way."""

    def stop(*_: object) -> None:
        on_stop()
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
