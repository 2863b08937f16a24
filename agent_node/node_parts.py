"""What a serving node is made of (:class:`NodeParts`): the runtime and its
executors, the A2A task service and its bindings, the app with its guard,
probes and metrics, the peers' client and watchdog, the push sender and
receiver — assembled from a :class:`~agent_node.config.NodeConfig`, then
started and closed in order. :mod:`agent_node.node` serves them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from agent_node.config import NodeConfig
from agent_node.node_equipment import Equipment
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["NodeParts"]

log = logging.getLogger(__name__)


@dataclass
class NodeParts:
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
    #: Seconds the engine's running visits get to finish when the node stops.
    stop_grace: float = 0.0
    #: The skills' workflows, by skill: their tool calls are checked at start.
    workflows: dict[str, CompiledWorkflow] = field(default_factory=dict)
    _pruning: asyncio.Task[None] | None = None
    _checking: asyncio.Task[None] | None = None
    _trimming: asyncio.Task[None] | None = None
    _quieting: asyncio.Task[None] | None = None

    @classmethod
    def assemble(
        cls, config: NodeConfig, workflows: dict[str, CompiledWorkflow], secure: bool
    ) -> NodeParts:

        from agent_node.a2a.peers.push_receiver import PUSH_PATH, PushReceiver
        from agent_node.a2a.peers.watchdog import Watchdog
        from agent_node.a2a.server.app import Guard, create_app
        from agent_node.a2a.server.card import CardDocument, build_card, offers_extended_card
        from agent_node.a2a.server.extended_card import ExtendedCard
        from agent_node.a2a.server.input_modes import input_modes_of
        from agent_node.a2a.server.jsonrpc import jsonrpc_endpoint
        from agent_node.a2a.server.ops import NodeAbout, ops_routes
        from agent_node.a2a.server.push import PushSender
        from agent_node.a2a.server.rest import rest_endpoint
        from agent_node.a2a.server.tasks import TaskService
        from agent_node.runtime import Runtime
        from agent_node.scope import caller_of
        from agent_node.security.authn import authenticator
        from agent_node.security.authz import Policy
        from agent_node.telemetry.health import Health
        from agent_node.telemetry.metrics import NodeMetrics
        from agent_node.telemetry.metrics_http import counted, metrics_route
        from agent_node.telemetry.traces import start_traces  # traces (issue 17)
        from agent_node.tool_check import check_servers

        check_servers(workflows, [server.name for server in config.mcp])
        equipment = Equipment.of(config)
        executors, delegator, http = equipment.executors, equipment.delegator, equipment.http
        runtime = Runtime(config.store, node=config.name, scope="all", executors=executors)
        equipment.use_store(runtime.store)
        for workflow in workflows.values():
            runtime.workflows.add(workflow)
        card = CardDocument.of(_signed(config, build_card(config, workflows)))
        default = next((s.id for s in config.skills if s.default), None)
        authn = authenticator(config.auth, config.path, config.name)
        # Callers are known (and the policy applies) with TLS or another scheme.
        known = secure or authn is not None
        policy = Policy.of(config.policy) if known else Policy.open()
        modes = input_modes_of(config.card_source(), workflows)
        tasks = TaskService(
            runtime, workflows, default_skill=default, policy=policy, input_modes=modes
        )
        tasks.max_open_tasks_per_caller = config.limits.max_open_tasks_per_caller
        if offers_extended_card(config, workflows):
            extended = _signed(config, build_card(config, workflows, extended=True))
            tasks.extended_card = ExtendedCard(extended, policy)
        if config.push.enabled:
            # The engine's own name: a restart frees at once what a dead
            # process of this node held (Engine.recover), pushes included.
            owner = str(runtime.engine.owner)
            tasks.push = PushSender(
                runtime.store, tasks.render_push, config.push, owner=owner, tls=equipment.outgoing
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
            max_streams_per_caller=config.limits.max_streams_per_caller,
            authn=authn,
            open_paths=frozenset({PUSH_PATH}) if pushes.anonymous else frozenset(),
        )
        posts = {PUSH_PATH: pushes.endpoint}
        health = Health(runtime.store, runtime.engine)
        tasks.stopping = lambda: health.phase == "draining"
        about = NodeAbout(
            config.name,
            config.url,
            card.card,
            {skill: workflow.ir.id for skill, workflow in workflows.items()},
            serving=lambda: health.phase != "draining",
        )
        routes = ops_routes(runtime, policy, about)
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
        # traces (issue 17)
        traces = start_traces(config.telemetry, node=config.name, runtime=runtime, metrics=metrics)
        if traces is not None:
            app = traces.asgi(app, metrics)  # counts the requests' metrics too
            traces.instrument(http)
        elif metrics is not None:
            app = counted(app, metrics)
        watchdog = Watchdog(runtime, delegator)
        parts = cls(runtime, tasks, app, http, watchdog, equipment.tools, equipment.llm, pushes)
        parts.delegator = delegator
        parts.health = health
        parts.metrics = metrics
        parts.traces = traces  # traces (issue 17)
        parts.retention = config.retention
        parts.stop_grace = config.stop_grace_seconds
        parts.workflows = workflows
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
        from agent_node.tool_check import warn_in_background

        self._checking = warn_in_background(self.tools, self.workflows)
        from agent_node.heap import keep_trimmed

        # What a burst (of handshakes, of streams) freed goes back to the system.
        self._trimming = asyncio.create_task(keep_trimmed(), name="agent-node heap trim")
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

    def quiet(self) -> None:
        """Stop at once the loops that write to the store (the watchdog, the
        push sender, retention), ahead of :meth:`close`: a newer agent-node
        upgraded it, and what they would write it may not hold."""
        self._quieting = asyncio.create_task(self._quiet(), name="agent-node quiet")

    async def _quiet(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
        await self.watchdog.close()
        if self.tasks.push is not None:
            await self.tasks.push.close()

    async def close(self) -> None:
        if self._quieting is not None:
            await asyncio.wait([self._quieting])
        for task in (self._pruning, self._trimming, self._checking):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        await self.watchdog.close()
        await self.pushes.close()
        if self.tasks.push is not None:
            await self.tasks.push.close()
        # The engine first (no more commits; its running visits given their
        # grace), then the traces, whose last read-backs of a log still need
        # the store open.
        await self.runtime.engine.stop(self.stop_grace)
        if self.traces is not None:  # traces (issue 17)
            await self.traces.close()
        await self.runtime.close()
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
