"""Prometheus metrics of a node, at ``/metrics``.

What is counted, and where it comes from:

* From each commit of this process (a store's commit observer,
  :mod:`agent_node.store.notify`): executions started and ended by workflow
  and status, node visit durations by node type and outcome, delegation
  round trips and outcomes per peer, model calls, tokens and cost per model.
  A commit is counted once, by the process that made it: with several
  replicas on one database, sum over them. Commits are held a moment and
  counted a few at a time (:mod:`agent_node.store.notify`; a scrape counts
  those held first), by the traces' follower when traces are on
  (:mod:`.traces_follow`).
* From each claim: how long a ready node visit waited to be claimed.
* From each HTTP request (an ASGI wrapper): requests by method, route and
  code, and their latency.
* At each scrape, from the store (:mod:`agent_node.store.gauges`): work
  ready to claim and the oldest one's age, visits leased, non-terminal
  executions by status, parked waits by kind, delegations in flight by
  state, the push outbox (due, failing, oldest change's age). On a shared
  database every replica reports the same figures: take one, not the sum.
* Store commit latency (the time a write waited for its commit).
* The node's certificate: when the one in use expires, and new files taken
  or refused (:mod:`agent_node.security.tls_reload`).

Each node has its own registry (several nodes may share a process in
tests); the names are prefixed ``agent_node_``. Labels come from a closed
set (statuses, node types, HTTP methods and codes) or from the node's own
configuration (workflows, peers, models), never from what a caller sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent_node.store import Store
from agent_node.store.base import Commit
from agent_node.store.records import Claim, DelegationState, EventRecord, ExecutionRecord
from agent_node.store.sql import LIVE
from agent_node.telemetry.http_methods import HTTP_METHODS
from agent_node.telemetry.tallies import Tallies

__all__ = ["WAIT_KINDS", "NodeMetrics"]

log = logging.getLogger(__name__)

#: Seconds: a node visit (a model call is seconds, a branch microseconds).
_DURATIONS = (0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_ROUND_TRIPS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
_ENDS = {"execution_completed": "completed", "execution_failed": "failed"}
#: What a node visit parks on (``agent_node.engine.executor.Park.kind``).
WAIT_KINDS = ("auth", "delegation", "event", "input", "timer")
#: Seconds a scrape may wait for the store's gauges.
SCRAPE_TIMEOUT = 2.0
#: Delegations whose sending time is remembered (for their round trip).
_SENT_KEPT = 10_000
#: What the output of a delegate visit that timed out unsent holds (as the
#: engine writes it: compact JSON), looked for before anything is parsed.
_UNSENT = '"unsent":true'


class NodeMetrics:
    """A node's metrics: feed it commits, claims and requests; scrape it."""

    def __init__(self, store: Store, workflows: Any, node: str) -> None:
        self.store = store
        self.workflows = workflows
        self.registry = CollectorRegistry(auto_describe=True)
        # Counted on the event loop in plain Python (:mod:`.tallies`).
        t = Tallies()
        self.executions = t.count(
            "agent_node_executions",
            "Executions started and ended, by workflow and status",
            ["workflow", "status"],
        )
        self.node_seconds = t.timing(
            "agent_node_node_duration_seconds",
            "Node visits' run time, by node type and outcome",
            ["type", "outcome"],
            buckets=_DURATIONS,
        )
        self.claim_delay = t.timing(
            "agent_node_ready_to_claim_seconds",
            "How long a ready node visit waited before a worker claimed it",
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 60, 300),
        )
        self.delegations = t.count(
            "agent_node_delegations", "Delegations ended, by peer and outcome", ["peer", "outcome"]
        )
        self.round_trips = t.timing(
            "agent_node_delegation_round_trip_seconds",
            "From sending a task to a peer to its result, by peer",
            ["peer"],
            buckets=_ROUND_TRIPS,
        )
        self.model_calls = t.count("agent_node_model_calls", "Model calls, by model", ["model"])
        self.model_tokens = t.count(
            "agent_node_model_tokens",
            "Model tokens, by model and kind (prompt, completion)",
            ["model", "kind"],
        )
        self.model_cost = t.count(
            "agent_node_model_cost", "Model cost (USD, as priced), by model", ["model"]
        )
        self.requests = t.count(
            "agent_node_http_requests",
            "HTTP requests answered, by method, route and status code",
            ["method", "route", "code"],
        )
        self.request_seconds = t.timing(
            "agent_node_http_request_duration_seconds",
            "HTTP request latency (to the end of the answer), by route",
            ["route"],
            buckets=_FAST,
        )
        #: The upper bounds of :attr:`node_seconds`' buckets.
        self.duration_bounds = self.node_seconds.bounds
        self.commit_seconds = t.timing(
            "agent_node_store_commit_seconds",
            "How long a write waited for its commit",
            buckets=_FAST,
        )
        self.tls_reloads = t.count(
            "agent_node_tls_reloads",
            "New certificate files taken or refused, by role and outcome (success, failure)",
            ["role", "outcome"],
        )
        r = self.registry
        r.register(t)
        self.store_up = Gauge(
            "agent_node_store_up", "1 when the last scrape could read the store", registry=r
        )
        self.tls_expiry = Gauge(
            "agent_node_tls_certificate_expiry_timestamp_seconds",
            "When the node's certificate in use expires (Unix time), by role",
            ["role"],
            registry=r,
        )
        self._gauges = _StoreCollector(store)
        r.register(self._gauges)
        #: Each delegation in flight, by its visit's key (``<execution>/<node>/<visit>``):
        #: its peer (one string per peer) and when it was sent. Oldest first.
        self._sent: dict[str, tuple[str, float]] = {}
        self._types: dict[tuple[str, str, str], str] = {}
        #: By workflow, version and node: its completed visits' series (:meth:`committed`).
        self._completed: dict[tuple[str, str, str], list[float]] = {}
        self._claims = self.claim_delay.row()
        #: Told how long the store's writes waited for their commit.
        self.commit_timer = self.commit_seconds.observer()
        self._stop = store.observe(self._observed, commit_timer=self.commit_timer)

    def close(self) -> None:
        self._stop()

    def pass_commits(self) -> Callable[[], None]:
        """Stop observing the store's commits: another observer's pass over
        them counts them here (the traces' follower, :mod:`.traces_follow`,
        with :meth:`committed` and :meth:`completed_row`: one pass over each
        commit for both; its subscription carries :attr:`commit_timer`).
        Returns the way to observe them here again."""
        self._stop()

        def take_back() -> None:
            self._stop = self.store.observe(self._observed, commit_timer=self.commit_timer)

        return take_back

    async def scrape(self) -> bytes:
        """The text exposition of every metric, the store's gauges read now
        (within :data:`SCRAPE_TIMEOUT`; without them when the store fails)."""
        self.store.tell_observers()
        collector = self._gauges
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                collector.latest = await self.store.gauges(time.time())
            self.store_up.set(1)
        except Exception as exc:  # the counters are still worth serving
            log.warning("metrics: the store's gauges could not be read: %s", exc)
            collector.latest = None
            self.store_up.set(0)
        return bytes(generate_latest(self.registry))

    # -- what the node does -------------------------------------------------------

    def claimed(self, claims: Sequence[Claim], now: float) -> None:
        row, bounds = self._claims, self.claim_delay.bounds  # claim_delay.observe, inline
        for claim in claims:
            delay = now - claim.work.available_at
            delay = delay if delay > 0.0 else 0.0
            row[bisect_left(bounds, delay)] += 1
            row[-1] += delay

    def _observed(self, commits: Sequence[Commit]) -> None:
        committed = self.committed
        for execution, events in commits:
            committed(execution, events)

    def committed(self, execution: ExecutionRecord, events: Sequence[EventRecord]) -> None:
        """Count what a commit of ``execution`` wrote."""
        for event in events:
            kind = event.kind
            if kind == "node_started":  # most events: nothing to count
                continue
            if kind == "node_completed" and (took := event.duration) is not None:
                # Most others: a step's end, its duration all there is to count
                # (node_seconds.observe, inline, into its node's series found once).
                key = (execution.workflow_id, execution.workflow_version, event.node or "")
                row = self._completed.get(key) or self.completed_row(execution, key[2])
                row[bisect_left(self.duration_bounds, took)] += 1
                row[-1] += took
                if self._sent:
                    self._delegated(execution, event, "completed")
                if _UNSENT in (event.data or ""):
                    self._unsent(event)
            elif kind == "node_completed" or kind == "node_failed":
                self._visit(execution, event)
            elif kind == "execution_started":
                self.executions.add((execution.workflow_id, "started"))
            elif kind in _ENDS or kind == "execution_canceled":
                status = _ENDS.get(kind, "canceled")
                self.executions.add((execution.workflow_id, status))
            elif kind == "delegation_sent" and event.node is not None:
                peer = sys.intern(str(_data(event.data).get("peer", "?")))
                self._sent[f"{execution.id}/{event.node}/{event.visit or 0}"] = (peer, event.at)
                if len(self._sent) > _SENT_KEPT:
                    del self._sent[next(iter(self._sent))]

    def completed_row(self, execution: ExecutionRecord, node: str) -> list[float]:
        """The series of ``node``'s completed visits in ``execution``'s workflow
        (of :attr:`node_seconds`), for a hot path to count into as
        :meth:`~.tallies.Timing.row` says."""
        key = (execution.workflow_id, execution.workflow_version, node)
        found = self._completed.get(key)
        if found is None:
            found = self.node_seconds.row((self._type_of(execution, node), "completed"))
            self._completed[key] = found
        return found

    def _visit(self, execution: ExecutionRecord, event: EventRecord) -> None:
        """A visit's end that is more than its duration (or a failed attempt)."""
        failed = event.kind == "node_failed"
        node_type = self._type_of(execution, event.node or "")
        data = _data(event.data)
        outcome = "failed" if failed else "completed"
        if failed and data.get("retry_at") is not None:
            outcome = "retrying"
        duration = data.get("duration")
        if isinstance(duration, int | float):
            self.node_seconds.observe(duration, (node_type, outcome))
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
        if self._sent and outcome != "retrying":
            self._delegated(execution, event, outcome)

    def _delegated(self, execution: ExecutionRecord, event: EventRecord, outcome: str) -> None:
        """The visit that ended was a delegation's: its outcome and round trip."""
        sent = self._sent.pop(f"{execution.id}/{event.node or ''}/{event.visit or 0}", None)
        if sent is not None:
            peer, at = sent
            self.delegations.add((peer, outcome))
            self.round_trips.observe(max(0.0, event.at - at), (peer,))

    def _usage(self, usage: dict[str, Any]) -> None:
        model = str(usage.get("model") or "unknown")
        calls = usage.get("calls", 1)
        self.model_calls.add((model,), calls if isinstance(calls, int) else 1)
        for kind in ("prompt", "completion"):
            tokens = usage.get(f"{kind}_tokens")
            if isinstance(tokens, int) and tokens > 0:
                self.model_tokens.add((model, kind), tokens)
        cost = usage.get("cost")
        if isinstance(cost, int | float) and cost > 0:
            self.model_cost.add((model,), cost)

    def _type_of(self, execution: ExecutionRecord, node: str) -> str:
        key = (execution.workflow_id, execution.workflow_version, node)
        found = self._types.get(key)
        if found is None:
            try:
                workflow = self.workflows.get(
                    execution.workflow_id, execution.workflow_version, execution.workflow_ref
                )
                found = str(workflow.node(node).type)
            except Exception:  # a workflow this process does not know
                found = "unknown"
            self._types[key] = found
        return found

    def _unsent(self, event: EventRecord) -> None:
        """A delegation that timed out before its peer took the message (its
        visit's output says ``unsent``): never sent, so never counted by
        :meth:`_delegated` (a walk: 67 such, counted nowhere)."""
        output = _data(event.data).get("output")
        if isinstance(output, dict) and output.get("unsent") is True:
            self.delegations.add((sys.intern(str(output.get("peer") or "?")), "unsent"))

    def tls_certificate(self, role: str, not_after: float | None, outcome: str | None) -> None:
        """The certificate of ``role`` (``server``) in use expires at
        ``not_after`` (None: unreadable); ``outcome``: of new files looked at
        (:mod:`agent_node.security.tls_reload`), None for none."""
        if outcome is not None:
            self.tls_reloads.add((role, outcome))
        if not_after is not None:
            self.tls_expiry.labels(role).set(not_after)

    def request(self, method: str, route: str, code: int, seconds: float) -> None:
        label = method if method in HTTP_METHODS else "other"
        self.requests.add((label, route, str(code)))
        self.request_seconds.observe(seconds, (route,))


class _StoreCollector(Collector):
    """Gauges read from the store at scrape time (:meth:`Store.gauges`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.latest: Any = None

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        gauges = self.latest
        if gauges is None:
            return []
        now = time.time()
        families = [
            _gauge("agent_node_work_ready", "Node visits ready to be claimed", gauges.ready),
            _gauge(
                "agent_node_work_ready_oldest_seconds",
                "Age of the oldest node visit ready to be claimed",
                0.0 if gauges.oldest_ready_at is None else max(0.0, now - gauges.oldest_ready_at),
            ),
            _gauge("agent_node_work_leased", "Node visits leased to a worker", gauges.leased),
            _gauge(
                "agent_node_push_due", "Push configs with a change to deliver", gauges.pushes_due
            ),
            _gauge(
                "agent_node_push_failing",
                "Push configs whose last delivery failed",
                gauges.pushes_failing,
            ),
            _gauge(
                "agent_node_push_lag_seconds",
                "Age of the oldest change not yet pushed",
                0.0 if gauges.oldest_push_at is None else max(0.0, now - gauges.oldest_push_at),
            ),
        ]
        for name, help_text, label, values, known in (
            (
                "agent_node_executions_active",
                "Executions not ended, by status",
                "status",
                gauges.executions,
                LIVE,
            ),
            ("agent_node_waits", "Parked waits, by kind", "kind", gauges.waits, WAIT_KINDS),
            (
                "agent_node_delegations_open",
                "Delegations in flight, by state",
                "state",
                gauges.delegations,
                get_args(DelegationState),
            ),
        ):
            family = GaugeMetricFamily(name, help_text, labels=[label])
            # Every value of a closed set, 0 included: an alert on a series
            # has it from the start, not from the first time it is not 0.
            for key, count in sorted({**dict.fromkeys(known, 0), **values}.items()):
                family.add_metric([key], count)
            families.append(family)
        return families


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _data(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
