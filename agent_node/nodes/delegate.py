"""``delegate``: hand a sub-task to a peer agent over A2A and park until it is done.

The node does no I/O itself: it records the delegation — a ``delegations``
row in state ``sending`` holding what to send — with its durable wait, in
the transaction that parks the visit. The watchdog
(:mod:`agent_node.a2a.peers.watchdog`) sends it (``SendMessage`` with
``returnImmediately``; ``messageId`` and ``Idempotency-Key`` = the visit's
idempotency key, so a repeated send finds the task the first one created),
and news of the peer's task — the send's answer, a push, a stream, a poll —
moves the row (:mod:`agent_node.nodes.delegation`) until the task settles:

* COMPLETED: the peer's answer goes into the state (``output``: the whole
  result; ``fields``: single values of it), then ``next``;
* FAILED, REJECTED, CANCELED, or the send refused for good (the request
  itself is wrong or forbidden): ``on_failed`` when set, else the execution
  fails with the peer's message;
* INPUT_REQUIRED: ``on_input_required`` when set (the peer's question in
  ``output``); else the question bubbles up: the visit waits for input with
  the peer's question as its prompt (over A2A our own task is
  INPUT_REQUIRED to our caller), and the answer is relayed down to the
  peer's task (by the watchdog, from the row, so a crash cannot lose it)
  while the visit waits on the peer again;
* AUTH_REQUIRED: the same, with ``on_auth_required``, a wait of kind
  ``auth`` and our task AUTH_REQUIRED. ``on_input_required`` does not catch
  it: what a peer needs authorized is usually for the human (or client) at
  the top of the chain to grant, so it bubbles up unless the workflow says
  it can answer it itself;
* no answer within ``timeout`` — an unreachable peer included: it is tried
  again with a capped backoff meanwhile, holding nothing but the row —
  ``on_timeout`` when set, else it fails; the peer's task is then canceled.

The result of a delegation, as ``output`` gets it::

    {"peer": "writer", "task_id": "…", "state": "TASK_STATE_COMPLETED",
     "text": "all text parts of the artifacts", "data": {merged data parts},
     "message": "the status message's text", "rtt": 0.012}

``fields`` maps state keys to paths in it: ``text``, ``message``, ``state``,
``data`` or ``data.<key>``.

The network is behind :class:`PeerClient` (implemented in ``agent_node.a2a``):
this module never imports an HTTP client.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import Field, model_validator

from agent_node.engine.executor import (
    Advance,
    Finish,
    NodeContext,
    Outcome,
    Park,
    Reaction,
    ResumeContext,
)
from agent_node.errors import NodeFailed, NotEquipped
from agent_node.nodes.delegation import ASKING, SETTLED, react, relay_row, scrub
from agent_node.store.records import DelegationRecord
from agent_node.tracing import child_traceparent
from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.retry import RetryPolicy

__all__ = [
    "DELEGATION_EVENT",
    "SETTLED",
    "UNSENT",
    "DelegateExecutor",
    "DelegateNode",
    "Delegation",
    "PeerClient",
    "Receipt",
    "delegation_event",
    "outcome_of",
]

#: What a delegation that timed out before the peer took its message says
#: (``agent_node_delegations_total`` counts it as ``unsent``).
UNSENT = "the peer never took the message"

#: The prefix of the event a delegation's wait is resolved by.
DELEGATION_EVENT = "delegation:"
_PATHS = ("text", "message", "state", "data", "task_id", "peer")
#: The watchdog's first poll of a delegation with no news, in seconds.
FIRST_POLL = 5.0


def delegation_event(key: str) -> str:
    """The event a delegation's wait is named by (its visit's idempotency key)."""
    return DELEGATION_EVENT + key


@node_type
class DelegateNode(NodeSpec):
    """Sends a message to a peer agent and waits for its task (see the module doc).

    ``peer`` names a configured peer; else ``skill`` or ``tag`` picks the
    first peer whose card offers it. ``skill`` is also sent as the
    message's ``metadata.skill``. ``text`` (a template) becomes a text part;
    ``data`` (state keys) a data part holding those keys; with neither, the
    whole state is sent as a data part.
    """

    type: Literal["delegate"] = "delegate"
    peer: str | None = None
    skill: str | None = None
    tag: str | None = None
    text: str | None = None
    data: list[str] | None = None
    output: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    on_timeout: str | None = None
    on_failed: str | None = None
    on_input_required: str | None = None
    on_auth_required: str | None = None
    next: str | None = None
    #: Whether the peer is asked to push (else it is only polled).
    push: bool = True
    #: Parking cannot fail but for a bug: sending is the watchdog's, tried
    #: again until ``timeout`` whatever the network does (see the module doc).
    retry: RetryPolicy | None = None

    has_next: ClassVar[bool] = True
    poll: float = Field(default=FIRST_POLL, gt=0)

    @model_validator(mode="after")
    def _target(self) -> DelegateNode:
        if self.peer is None and self.skill is None and self.tag is None:
            raise ValueError("a delegate node needs 'peer', 'skill' or 'tag'")
        for key, path in self.fields.items():
            if path not in _PATHS and not path.startswith("data."):
                raise ValueError(
                    f"fields.{key}: {path!r} is not one of {', '.join(_PATHS)} or data.<key>"
                )
        for route, target in self.question_routes.items():
            if target is not None and self.output is None:
                raise ValueError(f"'{route}' needs 'output' (where the question goes)")
        return self

    @property
    def question_routes(self) -> dict[str, str | None]:
        """``on_input_required`` and ``on_auth_required``, by name."""
        return {
            "on_input_required": self.on_input_required,
            "on_auth_required": self.on_auth_required,
        }

    def routed(self, state: str) -> str | None:
        """Where a peer's task in the asking ``state`` goes (None: it bubbles up)."""
        if state == "TASK_STATE_INPUT_REQUIRED":
            return self.on_input_required
        return self.on_auth_required if state == "TASK_STATE_AUTH_REQUIRED" else None

    def successors(self) -> list[str]:
        routes = (self.on_timeout, self.on_failed, self.on_input_required, self.on_auth_required)
        return [*super().successors(), *(r for r in routes if r)]

    def templates(self) -> list[tuple[str, str]]:
        return [("text", self.text)] if self.text else []

    def writes(self) -> list[tuple[str, str]]:
        written = [("output", self.output)] if self.output else []
        return written + [(f"fields.{key}", key) for key in self.fields]


@dataclass(frozen=True, slots=True)
class Delegation:
    """What the delegate node asks :class:`PeerClient` to send."""

    peer: str | None
    skill: str | None
    tag: str | None
    text: str | None
    data: Mapping[str, Any] | None
    #: The attempt's idempotency key: messageId and ``Idempotency-Key``.
    idempotency_key: str
    #: Ask the peer to push (a per-delegation token proves the push is real).
    push: bool = True
    #: W3C trace context of this execution, carried to the peer.
    traceparent: str | None = None
    #: The ``contextId`` the message names (derived from the key): a cancel
    #: finds the peer's task by it (``ListTasks``) without sending again.
    #: None in rows written before it was sent: their task cannot be found so.
    context: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Delegation:
        """The request a row holds; keys a newer release added are left out
        (forward compatible: ``context`` came without a schema bump, and an
        older release raised TypeError on every row that had it)."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the peer answered: its task as a 1.0 JSON object, and how it was reached."""

    peer: str
    endpoint: str
    version: str
    identity: str | None
    task: Mapping[str, Any]
    #: The peer will not push but streams: follow the task over SSE at once.
    follow: bool = False
    #: The scheme we presented besides our certificate (``bearer``, ``apiKey``, ``oauth2``).
    auth: str | None = None

    @property
    def task_id(self) -> str:
        return str(self.task.get("id", ""))

    @property
    def state(self) -> str:
        return str((self.task.get("status") or {}).get("state", ""))


class PeerClient(Protocol):
    """The network side of delegation (``agent_node.a2a`` implements it)."""

    def check(self, delegation: Delegation) -> None:
        """Raise :class:`~agent_node.errors.NodeFailed` when ``delegation``
        can never be sent (its peer is not configured, say); no I/O."""
        ...


class DelegateExecutor:
    """Runs delegate nodes for a node with ``peers`` (None: a runtime without peers)."""

    def __init__(self, peers: PeerClient | None = None) -> None:
        self.peers = peers

    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        if self.peers is None:
            raise NotEquipped(
                f"delegate node {spec.id!r}: this runtime has no peers"
                " (run the workflow in `agent-node serve` with `peers:` configured)"
            )
        delegation = _delegation(ctx, spec)
        self.peers.check(delegation)
        record = DelegationRecord(
            ctx.execution_id,
            spec.id,
            ctx.visit,
            peer=spec.peer or "",
            remote_task_id="",
            endpoint="",
            version="",
            identity=None,
            sent_at=ctx.now,
            next_poll_at=ctx.now,  # the watchdog sends it at once
            state="sending",
            request=delegation.to_json(),
        )
        deadline = ctx.now + spec.timeout if spec.timeout is not None else None
        target = {"peer": spec.peer} if spec.peer else {"skill": spec.skill, "tag": spec.tag}
        event = delegation_event(ctx.idempotency_key)
        return Park("delegation", event=event, deadline=deadline, info=target, delegation=record)

    def resume(self, ctx: ResumeContext, payload: Any) -> Outcome:
        """Our caller answered the peer's question: keep the answer on the row
        for the watchdog to relay, and wait on the peer again."""
        spec = _spec(ctx.spec)
        asked = ctx.delegation
        if asked is None or asked.state != "asked":
            raise NodeFailed(f"delegate node {spec.id!r}: no question of a peer to answer")
        relayed = relay_row(asked, payload, ctx.now)
        deadline = asked.sent_at + spec.timeout if spec.timeout is not None else None
        info = {"peer": asked.peer, "task_id": asked.remote_task_id}
        event = delegation_event(f"{asked.execution_id}/{asked.node}/{asked.visit}")
        return Park("delegation", event=event, deadline=deadline, info=info, delegation=relayed)

    def inform(self, ctx: ResumeContext, news: Mapping[str, Any]) -> Reaction:
        """News of the peer's task (see :mod:`agent_node.nodes.delegation`)."""
        spec = _spec(ctx.spec)

        def settle(peer: str, task: Mapping[str, Any], rtt: float) -> Advance | Finish:
            return outcome_of(spec, peer, task, rtt=rtt)

        def fail(reason: str) -> Advance | Finish:
            if spec.on_failed is not None:
                failed = {"peer": spec.peer, "state": "failed", "message": reason}
                patch = {spec.output: failed} if spec.output else None
                return Advance(next=spec.on_failed, patch=patch, output=failed)
            return Finish("failed", f"delegate node {spec.id!r}: {reason}")

        routes = {state for state in ASKING if spec.routed(state) is not None}
        return react(ctx, news, settle, routes, fail, spec.poll)

    def expire(self, ctx: ResumeContext) -> Outcome:
        spec = _spec(ctx.spec)
        row = ctx.delegation
        # Never sent: the visit's output says so (and to whom), for the
        # delegations counter (``unsent``) and whoever reads the history.
        unsent = (
            {"unsent": True, "peer": row.peer or spec.peer or "?"}
            if row is not None and row.state == "sending"
            else {}
        )
        if spec.on_timeout is not None:
            return Advance(next=spec.on_timeout, output={"timed_out": True, **unsent})
        why = f" (last attempt: {row.last_error})" if row is not None and row.last_error else ""
        if row is not None and unsent:
            # A try in flight has no error yet: say the message never got there.
            why = f" ({UNSENT}; last attempt: {row.last_error or 'a try was under way'})"
        reason = f"delegate node {spec.id!r}: no result from the peer in time{why}"
        return Finish("failed", reason, output=unsent or None)


def outcome_of(
    spec: DelegateNode, peer: str, task: Mapping[str, Any], *, rtt: float
) -> Advance | Finish:
    """Where a delegation goes once the peer's task is ``task`` (pure)."""
    result = _result(peer, task, rtt)
    state = result["state"]
    if state == "TASK_STATE_COMPLETED":
        try:
            patch = _patch(spec, result)
        except NodeFailed as exc:
            return Finish("failed", str(exc))
        return Advance(next=spec.next, patch=patch, output=_summary(result))
    if (route := spec.routed(state)) is not None:
        patch = {spec.output: result} if spec.output else None
        return Advance(next=route, patch=patch, output=_summary(result))
    if spec.on_failed is not None:
        patch = {spec.output: result} if spec.output else None
        return Advance(next=spec.on_failed, patch=patch, output=_summary(result))
    reason = scrub(result["message"]) or state.removeprefix("TASK_STATE_").lower().replace("_", " ")
    return Finish(
        "failed", f"delegate node {spec.id!r}: peer {peer!r} task {result['task_id']}: {reason}"
    )


def _result(peer: str, task: Mapping[str, Any], rtt: float) -> dict[str, Any]:
    texts: list[str] = []
    data: dict[str, Any] = {}
    for artifact in task.get("artifacts") or []:
        for part in artifact.get("parts") or []:
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("data"), Mapping):
                data.update(part["data"])
    status = task.get("status") or {}
    message = status.get("message") or {}
    said = [p["text"] for p in message.get("parts") or [] if isinstance(p.get("text"), str)]
    return {
        "peer": peer,
        "task_id": str(task.get("id", "")),
        "state": str(status.get("state", "")),
        "text": "\n".join(texts),
        "data": data,
        "message": "\n".join(said),
        "rtt": round(max(rtt, 0.0), 6),
    }


def _patch(spec: DelegateNode, result: Mapping[str, Any]) -> dict[str, Any] | None:
    patch: dict[str, Any] = {spec.output: dict(result)} if spec.output else {}
    for key, path in spec.fields.items():
        if path.startswith("data."):
            name = path.removeprefix("data.")
            if name not in result["data"]:
                raise NodeFailed(
                    f"delegate node {spec.id!r}: the peer's answer has no data key {name!r}"
                    f" (it has: {', '.join(sorted(result['data'])) or 'none'})"
                )
            patch[key] = result["data"][name]
        else:
            patch[key] = result[path]
    return patch or None


def _summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """What ``node_completed`` records (``inspect`` shows it)."""
    return {k: result[k] for k in ("peer", "task_id", "state", "rtt")}


def _delegation(ctx: NodeContext, spec: DelegateNode) -> Delegation:
    text = ctx.workflow.template(spec.id, "text").render(ctx.data) if spec.text else None
    data: Mapping[str, Any] | None
    if spec.data is not None:
        data = {key: ctx.data.get(key) for key in spec.data}
    else:
        data = None if text is not None else dict(ctx.data)
    return Delegation(
        peer=spec.peer,
        skill=spec.skill,
        tag=spec.tag,
        text=text,
        data=data,
        idempotency_key=ctx.idempotency_key,
        push=spec.push,
        traceparent=child_traceparent(ctx.traceparent, ctx.idempotency_key),
        context=_context_of(ctx.idempotency_key),
    )


#: The namespace of delegations' context ids.
_CONTEXTS = uuid.UUID("0c7d1f6e-3a57-4b8e-9d3f-6e2a1b5c8d40")


def _context_of(idempotency_key: str) -> str:
    """The ``contextId`` a delegation's message names: the same for every
    send of one visit (a replayed visit, a repeated send), new for each visit."""
    return str(uuid.uuid5(_CONTEXTS, idempotency_key))


def _spec(spec: object) -> DelegateNode:
    if not isinstance(spec, DelegateNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a delegate node")
    return spec
