"""The sections of a node's configuration (see :mod:`agent_node.config`).

Each section is its own model, validated where it is read; :class:`~agent_node.config.NodeConfig`
assembles them. Every model forbids unknown fields, so a typo is an error
naming the field.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_node.settings_auth import PeerAuth, PushAuth

__all__ = [
    "DEFAULT_MODEL",
    "ID_PATTERN",
    "BackendLimit",
    "Limits",
    "ListenConfig",
    "McpServerConfig",
    "ModelSettings",
    "PeerConfig",
    "PolicySettings",
    "PushSettings",
    "RetentionSettings",
    "SkillConfig",
    "TlsSettings",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_ORIGIN = re.compile(r"^(https?|grpcs?)://[^\s/?#@]+/?$", re.IGNORECASE)
DEFAULT_MODEL = "ollama_chat/llama3.2:1b"


class ListenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    #: 0 picks a free port (printed at start).
    port: int = Field(default=8470, ge=0, le=65535)
    #: Also serve A2A's gRPC binding on this port of the same host (0: a free
    #: one), with the same TLS, policy and limits; None: no gRPC. Needs
    #: ``pip install 'agent-node[grpc]'``.
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    #: The HTTP bindings served on ``port``: ``jsonrpc`` (A2A JSON-RPC, 1.0
    #: and 0.3, at ``/a2a``) and ``rest`` (HTTP+JSON, under ``/a2a``); none
    #: (``[]``) for a node that speaks A2A over gRPC alone. The card lists
    #: exactly what is served; the card itself, the push receiver and the
    #: operator API are served whatever this says.
    bindings: list[Literal["jsonrpc", "rest"]] = ["jsonrpc", "rest"]
    #: Over TLS, serve HTTP/2 on ``port`` to clients that offer it (ALPN
    #: ``h2``; the others get HTTP/1.1): their requests and event streams
    #: share one connection. False: HTTP/1.1 only.
    http2: bool = True

    @model_validator(mode="after")
    def _serves_a_binding(self) -> ListenConfig:
        if not self.bindings and self.grpc_port is None:
            raise ValueError("no A2A binding is served: bindings is empty and grpc_port is not set")
        return self


class SkillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    workflow: str = Field(min_length=1)
    default: bool = False
    #: Which card shows the skill: ``public`` (both), or ``extended`` (only
    #: the extended card, to the callers ``policy.extended_card`` names).
    #: Hiding is not authorization: who may call it is ``policy``'s
    #: ``callers`` / ``skills`` rule, as for any skill.
    card: Literal["public", "extended"] = "public"


class PushSettings(BaseModel):
    """Push notifications to callers (A2A ``CreateTaskPushNotificationConfig``).

    Push URLs must be ``http(s)`` and reach a public address: loopback,
    private, link-local and other non-global addresses are refused (SSRF),
    both when a config is set and, after resolving the host, before each
    POST, unless the host or its network is in ``allow``.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Host names (exact, case-insensitive) and IP networks (``10.0.0.0/8``,
    #: ``::1``) push URLs may reach although they are not public.
    allow: list[str] = []
    #: Tries per change before giving up on it (the next change is tried anew).
    attempts: int = Field(default=8, ge=1, le=100)
    #: Seconds one POST may take.
    timeout: float = Field(default=10.0, gt=0, le=300)
    #: What pushes to some URLs present besides the config's own
    #: ``authentication`` (the longest matching prefix; see
    #: :class:`~agent_node.settings_auth.PushAuth`).
    credentials: list[PushAuth] = []

    @model_validator(mode="after")
    def _allow_entries_parse(self) -> PushSettings:
        import ipaddress

        for entry in self.allow:
            if "/" in entry or entry.replace(".", "").isdigit() or ":" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"push.allow: {entry!r} is not an IP network") from None
            elif not entry or any(c.isspace() for c in entry):
                raise ValueError(f"push.allow: {entry!r} is not a host name")
        return self


class Limits(BaseModel):
    """Bounds on what one request (and one caller) may ask of the node.

    Each is enforced before a handler runs, and each refusal is a clear error:
    the body and nesting caps are JSON-RPC -32600 (HTTP 413 for the body), the
    part caps -32602, the header caps HTTP 431, the per-caller cap HTTP 429
    with JSON-RPC -32032 and ``Retry-After`` (the cap on open streams
    -32032 without it: only closing one makes room). The cap on a caller's open
    tasks is the task service's, the one that reads the store: -32032 too
    (HTTP 429, gRPC RESOURCE_EXHAUSTED), without ``Retry-After``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Largest body in bytes (1 MiB).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: Deepest nesting of arrays and objects, the envelope counting as 1.
    max_depth: int = Field(default=32, ge=4, le=512)
    #: Most parts in a sent message.
    max_parts: int = Field(default=64, ge=1)
    #: Largest ``text`` (UTF-8) or ``raw`` (decoded) part in bytes (256 KiB).
    max_part_bytes: int = Field(default=256 * 1024, ge=1)
    #: Longest ``Idempotency-Key`` header in characters.
    max_idempotency_key: int = Field(default=200, ge=1, le=4096)
    #: Most header fields in one request.
    max_headers: int = Field(default=100, ge=8, le=10_000)
    #: Largest request line plus header fields, in bytes (16 KiB).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    #: Requests one caller identity may have in flight at once (event
    #: streams apart); 0: no cap. Plain-HTTP callers share one budget.
    max_concurrent_per_caller: int = Field(default=64, ge=0)
    #: Event streams (SendStreamingMessage, SubscribeToTask) one caller
    #: identity may have open at once, on every binding together: one more
    #: is refused (-32032) until one closes. Apart from the requests, so
    #: that a caller following its tasks can still cancel them. 0: no cap.
    max_streams_per_caller: int = Field(default=256, ge=0)
    #: Tasks one caller identity may have open (submitted, working, asking
    #: for input or waiting) at once: a send that would make one more is
    #: refused, no task made, until some end (canceled, or answered and
    #: finished). A follow-up to a task, or a send repeated with its
    #: ``Idempotency-Key``, is never refused by it. Counted in the store,
    #: so it holds across restarts and the replicas of one database (sends
    #: racing at the cap may pass it by as many as are in flight at once);
    #: callers without an identity (``--insecure-dev``) are not counted.
    #: 0: no cap.
    max_open_tasks_per_caller: int = Field(default=10_000, ge=0)
    #: Seconds a connection may sit idle between requests before the node
    #: closes it. Longer than the clients' own pools keep an idle connection
    #: (httpx 5 s, Node's undici 4 s, aiohttp 15 s): with equal times a
    #: client sends on a connection the node is closing at that moment, and
    #: its request is lost ("server disconnected without sending a
    #: response"). Behind a load balancer, make it longer than the balancer's
    #: idle timeout.
    keep_alive: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds a client may take to finish a TLS handshake, to send a
    #: request's line and headers (from connecting, or from the head's first
    #: byte on a kept-alive connection), and between two parts of a body,
    #: before the node closes its connection (``408`` when nothing was
    #: answered yet). Progress is what counts: a slow upload that keeps
    #: sending, and a long response (an event stream), are not cut.
    read_timeout: float = Field(default=20.0, gt=0, le=3600)
    #: Connections the node's HTTP listener holds open at once, TLS
    #: handshakes included. At the cap a new connection takes the place of
    #: the one idle longest (no request in flight), or is closed when none
    #: is. 0: the process's descriptor limit (RLIMIT_NOFILE) less a quarter
    #: of it, at least 64, for the store, peers and files.
    max_connections: int = Field(default=0, ge=0)


class RetentionSettings(BaseModel):
    """``retention:``: how long finished executions are kept (see
    :mod:`agent_node.store.retention`). Absent: forever."""

    model_config = ConfigDict(extra="forbid")

    #: Finished executions last changed longer ago than this go ("30d",
    #: "12h"; the unit is required: a bare number is refused).
    finished: float
    #: How often the node prunes.
    every: float = 3600.0
    #: Executions deleted per transaction.
    batch: int = Field(default=500, ge=1, le=10_000)

    @field_validator("finished", mode="before")
    @classmethod
    def _age(cls, value: object) -> float:
        from agent_node.workflow.durations import parse_age

        return parse_age(value)

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        from agent_node.workflow.durations import parse_duration

        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be longer than zero")
        return seconds


class PolicySettings(BaseModel):
    """Who may do what, by the identity of the caller's certificate.

    Each entry is an identity (``spiffe://example.org/agent/alice``, or a
    certificate CN with ``tls.identity_from_cn``) or a glob over identities
    (``spiffe://example.org/*``); ``*`` is anyone whose certificate chains
    to the trust bundle. A task belongs to the identity that created it:
    only that caller (and operators) may read, continue, cancel or subscribe
    to it, and ListTasks shows a caller its own tasks. Without TLS (``--insecure-dev``) nobody has
    an identity and none of this applies.
    """

    model_config = ConfigDict(extra="forbid")

    #: Who may call skills that have no rule of their own in ``skills``.
    callers: list[str] = ["*"]
    #: Per skill id: who may call it (instead of ``callers``).
    skills: dict[str, list[str]] = {}
    #: Who may use the operator API (``/ops``) and every task. Default: nobody.
    operators: list[str] = []
    #: Who may read the extended Agent Card (GetExtendedAgentCard), which a
    #: node offers when a skill says ``card: extended``; operators may too.
    extended_card: list[str] = ["*"]

    @model_validator(mode="after")
    def _patterns_are_not_empty(self) -> PolicySettings:
        lists = {"callers": self.callers, "operators": self.operators}
        lists.update({f"skills.{skill}": ids for skill, ids in self.skills.items()})
        for where, patterns in lists.items():
            for pattern in patterns:
                if not pattern.strip() or pattern != pattern.strip():
                    raise ValueError(f"policy.{where}: {pattern!r} is not an identity or glob")
        return self


class PeerConfig(BaseModel):
    """A peer agent this node may delegate to: where it is and who it must be."""

    model_config = ConfigDict(extra="forbid")

    #: How workflows name it (``delegate: {peer: NAME}``).
    name: str = Field(pattern=ID_PATTERN)
    #: Its base URL: the Agent Card is fetched from its well-known paths here.
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    #: The identity its certificate must name (its URI SAN; its CN only with
    #: ``tls.identity_from_cn``); None: any
    #: identity the trust bundle vouches for. Pushes about our delegations
    #: are accepted only from this identity.
    identity: str | None = None
    #: Origins (``https://host:port``; a gRPC target as ``grpcs://host:port``)
    #: its card may point us to besides ``url``'s. Only ``url``'s origin is
    #: used by default: a card naming an interface elsewhere (another host,
    #: port or scheme, plain ``http`` from an ``https`` peer) is refused unless
    #: its origin is listed here.
    endpoints: list[str] = []
    #: JWK Set files (relative to the configuration) whose keys vouch for its
    #: card's signatures, matched by ``kid``: for a peer that signs with a key
    #: of its own rather than a certificate of the trust bundle (``x5c``) or
    #: a JWK Set on its own origin (``jku``).
    card_keys: list[str] = []
    #: Refuse its card unless a signature verifies with a key of the trust
    #: bundle, ``card_keys`` or its own origin. Otherwise a signature whose key
    #: cannot be found is skipped (logged) and the card is used as unsigned.
    require_signed_card: bool = False
    #: Credentials it wants besides (or instead of) our client certificate.
    auth: PeerAuth | None = None

    @field_validator("endpoints")
    @classmethod
    def _endpoints_are_origins(cls, endpoints: list[str]) -> list[str]:
        for entry in endpoints:
            if not _ORIGIN.match(entry):
                raise ValueError(
                    f"{entry!r} is not an origin (https://host:port or grpcs://host:port, no path)"
                )
        return endpoints


class BackendLimit(BaseModel):
    """How many model calls one backend takes at once (``models.backends``):
    a server by its base URL, or a provider by name."""

    model_config = ConfigDict(extra="forbid")

    #: A server's base URL (Ollama's, an OpenAI-compatible server's).
    url: str | None = Field(default=None, pattern=r"^https?://")
    #: Or a litellm provider: the model string's prefix (``openai``, ``anthropic`` …).
    provider: str | None = Field(default=None, pattern=r"^[a-z0-9_-]+$")
    concurrency: int = Field(ge=1, le=10_000)
    #: The limit holds across every process of the node's store (worker
    #: processes, replicas), not only within each.
    shared: bool = False

    @model_validator(mode="after")
    def _one_backend(self) -> BackendLimit:
        if (self.url is None) == (self.provider is None):
            raise ValueError("models.backends: give exactly one of url or provider")
        return self


class ModelSettings(BaseModel):
    """Model nodes: which model when a node names none, and where its server is."""

    model_config = ConfigDict(extra="forbid")

    #: Any model string litellm accepts; ``ollama_chat/<model>`` for local use.
    #: Unset: ``$AGENT_NODE_MODEL``, else ``ollama_chat/llama3.2:1b``.
    default: str = Field(
        default_factory=lambda: os.environ.get("AGENT_NODE_MODEL") or DEFAULT_MODEL
    )
    #: Where the local model server is: Ollama's base URL, or an
    #: OpenAI-compatible server's (``…/v1``) for ``openai/<model>`` models
    #: (llama.cpp's server, LM Studio, vLLM). Ollama models are asked at
    #: ``$OLLAMA_API_BASE`` when set, else here unless this is a ``…/v1``
    #: server's, else at http://localhost:11434 (a chain may ask both).
    api_base: str | None = None
    #: Seconds one model call may take.
    timeout: float = Field(default=120.0, gt=0)
    #: Calls each backend takes at once, shared by every model node and judge
    #: of the process (Ollama's default: ``$OLLAMA_NUM_PARALLEL``, else 1).
    backends: list[BackendLimit] = []
    #: Send every call through litellm (its callbacks see them all), not only
    #: those with tools or a schema: plain streamed text from Ollama and
    #: OpenAI-compatible servers is otherwise read directly, ~6x leaner.
    via_litellm: bool = False


class McpServerConfig(BaseModel):
    """An MCP server whose tools the node's tool and model nodes may call:
    started over stdio (``command``) or reached over streamable HTTP (``url``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=ID_PATTERN)
    command: list[str] | None = Field(default=None, min_length=1)
    #: Environment variables for a stdio server (added to a minimal default).
    env: dict[str, str] = {}
    #: Working directory of a stdio server, relative to the configuration file.
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    #: HTTP headers for a streamable-HTTP server (e.g. Authorization).
    headers: dict[str, str] = {}
    #: Seconds one tool call may wait for its answer (a node's ``timeout``,
    #: when it has one, is its calls' instead). 60 s, the MCP TypeScript
    #: SDK's default: tools often wrap slow work (a fetch, a build, a model).
    timeout: float = Field(default=60.0, gt=0)
    #: The largest answer a tool call may give: its text and files, or its
    #: structured content as JSON (10 MiB, as the http node's ``max_bytes``).
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"mcp server {self.name!r}: give exactly one of 'command' or 'url'")
        return self


class TlsSettings(BaseModel):
    """Mutual TLS: what the node presents, and what its peers must chain to."""

    model_config = ConfigDict(extra="forbid")

    cert: str = Field(min_length=1)
    key: str = Field(min_length=1)
    trust: list[str] = Field(min_length=1)
    #: Take a certificate's subject CN as its identity when it has no URI SAN
    #: (a CA that cannot issue URI SANs). Off: such a certificate names
    #: nobody, whatever its CN reads — any CA of ``trust`` may write any CN.
    #: It applies to callers, pushing peers and the peers this node calls.
    identity_from_cn: bool = False
    #: Seconds between looks at ``cert``, ``key`` and ``trust`` for a new set
    #: (a ``stat`` each; SIGHUP looks at once): new handshakes use it, open
    #: connections keep theirs (:mod:`agent_node.security.tls_reload`).
    reload_interval: float = Field(default=5.0, gt=0, le=3600)
