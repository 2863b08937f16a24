"""A node's configuration: ``agent-node.yaml``.

::

    name: researcher                    # the node's name (lease owners, logs)
    listen: {host: 127.0.0.1, port: 8470}
    public_url: https://researcher.example.org   # optional: what the card advertises
    store: sqlite:///.agent-node/researcher.db   # optional: default $AGENT_NODE_STORE
    card: cards/researcher.yaml         # the Agent Card source (name, skills' words)
    skills:                             # each skill runs one workflow
      - id: research
        workflow: workflows/research.yaml        # YAML file, file.py:attr or module:attr
        default: true                   # the skill a message without one goes to
    tls:                                # mutual TLS (see certs/README.md)
      cert: certs/researcher.pem        # this node's certificate (chain) and key
      key: certs/researcher-key.pem
      trust: [certs/ca.pem]             # CA files peers' certificates must chain to
      identity_from_cn: false           # true: a certificate without a URI SAN is its CN
    card_public: false                  # true: the card needs no client certificate
    policy:                             # who may do what, by certificate identity
      callers: ["*"]                    # skills without a rule of their own (default: any)
      skills: {research: ["spiffe://example.org/agent/coordinator"]}
      operators: ["spiffe://example.org/agent/ops-*"]   # the operator API (default: none)
    peers:                              # agents this node may delegate to
      - {name: writer, url: https://writer.example.org:8470,
         identity: "spiffe://example.org/agent/writer",   # optional: who it must be
         endpoints: [https://writer-2.example.org]}   # optional: origins its card may name
    models:                             # model nodes (litellm)
      default: ollama_chat/llama3.2:1b   # when a node names none
      api_base: http://localhost:11434   # Ollama's URL (else $OLLAMA_API_BASE)
    mcp:                                # MCP servers whose tools tool/model nodes use
      - {name: files, command: [python, -m, my_files_server]}      # stdio
      - {name: search, url: http://127.0.0.1:9000/mcp}             # streamable HTTP
    limits:                             # the edge: every refusal is a clear error
      max_body_bytes: 1048576
      max_concurrent_per_caller: 64
    push:                               # A2A push notifications to callers
      allow: [127.0.0.1, localhost]     # hosts/networks allowed although not public
      attempts: 8                       # tries per change before giving up on it
      timeout: 10                       # seconds per POST

Paths are relative to the configuration file. Command-line flags override
the file (:meth:`NodeConfig.with_overrides`). Every mistake is a
:class:`~agent_node.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent_node.errors import ConfigError

if TYPE_CHECKING:
    import ssl

__all__ = [
    "CardSource",
    "Limits",
    "ListenConfig",
    "McpServerConfig",
    "ModelSettings",
    "NodeConfig",
    "PeerConfig",
    "PolicySettings",
    "PushSettings",
    "SkillConfig",
    "SkillText",
    "TlsSettings",
    "load_config",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_ORIGIN = re.compile(r"^https?://[^\s/?#@]+/?$", re.IGNORECASE)
DEFAULT_MODEL = "ollama_chat/llama3.2:1b"
M = TypeVar("M", bound=BaseModel)


class ListenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    #: 0 picks a free port (printed at start).
    port: int = Field(default=8470, ge=0, le=65535)


class SkillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    workflow: str = Field(min_length=1)
    default: bool = False


class SkillText(BaseModel):
    """How the card describes a skill (the card source's ``skills`` entries)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str | None = None
    tags: list[str] = []
    examples: list[str] = []
    input_modes: list[str] | None = Field(default=None, alias="inputModes")
    output_modes: list[str] | None = Field(default=None, alias="outputModes")


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
    with JSON-RPC -32032 and ``Retry-After``.
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
    #: Requests one caller identity may have in flight at once (streams count
    #: while they are open); 0: no cap. Plain-HTTP callers share one budget.
    max_concurrent_per_caller: int = Field(default=64, ge=0)


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
    name: str = Field(pattern=_ID)
    #: Its base URL: the Agent Card is fetched from its well-known paths here.
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    #: The identity its certificate must name (its URI SAN; its CN only with
    #: ``tls.identity_from_cn``); None: any
    #: identity the trust bundle vouches for. Pushes about our delegations
    #: are accepted only from this identity.
    identity: str | None = None
    #: Origins (``https://host:port``) its card may point us to besides
    #: ``url``'s. Only ``url``'s origin is used by default: a card naming an
    #: interface elsewhere (another host, port or scheme, plain ``http`` from
    #: an ``https`` peer) is refused unless its origin is listed here.
    endpoints: list[str] = []

    @field_validator("endpoints")
    @classmethod
    def _endpoints_are_origins(cls, endpoints: list[str]) -> list[str]:
        for entry in endpoints:
            if not _ORIGIN.match(entry):
                raise ValueError(f"{entry!r} is not an origin (https://host:port, no path)")
        return endpoints


class ModelSettings(BaseModel):
    """Model nodes: which model when a node names none, and where Ollama is."""

    model_config = ConfigDict(extra="forbid")

    #: Any model string litellm accepts; ``ollama_chat/<model>`` for local use.
    #: Unset: ``$AGENT_NODE_MODEL``, else ``ollama_chat/llama3.2:1b``.
    default: str = Field(
        default_factory=lambda: os.environ.get("AGENT_NODE_MODEL") or DEFAULT_MODEL
    )
    #: Ollama's base URL; None: ``$OLLAMA_API_BASE``, else http://localhost:11434.
    api_base: str | None = None
    #: Seconds one model call may take.
    timeout: float = Field(default=120.0, gt=0)


class McpServerConfig(BaseModel):
    """An MCP server whose tools the node's tool and model nodes may call:
    started over stdio (``command``) or reached over streamable HTTP (``url``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID)
    command: list[str] | None = Field(default=None, min_length=1)
    #: Environment variables for a stdio server (added to a minimal default).
    env: dict[str, str] = {}
    #: Working directory of a stdio server, relative to the configuration file.
    cwd: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    #: HTTP headers for a streamable-HTTP server (e.g. Authorization).
    headers: dict[str, str] = {}

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


class CardSource(BaseModel):
    """The hand-written part of an Agent Card (a YAML file in ``cards/``).

    Skills are listed by id with their words only; which skills exist comes
    from the node configuration, so nothing is written twice.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    version: str = "1.0.0"
    provider: dict[str, str] | None = None
    documentation_url: str | None = Field(default=None, alias="documentationUrl")
    icon_url: str | None = Field(default=None, alias="iconUrl")
    default_input_modes: list[str] = Field(
        default=["text/plain", "application/json"], alias="defaultInputModes"
    )
    default_output_modes: list[str] = Field(
        default=["text/plain", "application/json"], alias="defaultOutputModes"
    )
    skills: dict[str, SkillText] = {}


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID)
    listen: ListenConfig = ListenConfig()
    public_url: str | None = None
    store: str | None = None
    card: str | None = None
    #: Also serve the A2A 0.3 card fields (``url``, ``protocolVersion``, …) so
    #: 0.3 clients can read the card. The 1.0 conformance suite refuses fields
    #: outside the 1.0 schema: turn this off to run it.
    card_v03_fields: bool = True
    skills: list[SkillConfig] = []
    push: PushSettings = PushSettings()
    #: Serve HTTPS, requiring client certificates; None: plain HTTP, which
    #: ``agent-node serve`` allows only with ``--insecure-dev`` on loopback.
    tls: TlsSettings | None = None
    #: The Agent Card needs no client certificate (discovery by outsiders);
    #: everything else still does.
    card_public: bool = False
    #: Sign the card with the node's TLS key (JWS over the JCS card, the
    #: certificate chain in ``x5c``), so peers can check who published it.
    sign_card: bool = True
    policy: PolicySettings = PolicySettings()
    peers: list[PeerConfig] = []
    models: ModelSettings = ModelSettings()
    mcp: list[McpServerConfig] = []
    limits: Limits = Limits()
    #: Where relative paths are resolved: the configuration file's directory.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _skills_are_distinct(self) -> NodeConfig:
        ids = [skill.id for skill in self.skills]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"skill ids must be distinct; repeated: {', '.join(duplicates)}")
        if sum(skill.default for skill in self.skills) > 1:
            raise ValueError("at most one skill can be the default")
        for kind, names in (
            ("peer", [peer.name for peer in self.peers]),
            ("mcp server", [server.name for server in self.mcp]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be distinct; repeated: {', '.join(repeated)}")
        unknown = sorted(set(self.policy.skills) - set(ids))
        if unknown:
            raise ValueError(f"policy.skills names skills this node lacks: {', '.join(unknown)}")
        return self

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        store: str | None = None,
        tls: TlsSettings | None = None,
    ) -> NodeConfig:
        listen = self.listen.model_copy(
            update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        )
        update: dict[str, Any] = {"listen": listen}
        if store is not None:
            update["store"] = store
        if tls is not None:
            if self.tls is not None and "identity_from_cn" not in tls.model_fields_set:
                # Flags name the files only: how identities are read stays the file's.
                tls = tls.model_copy(update={"identity_from_cn": self.tls.identity_from_cn})
            update["tls"] = tls
        return self.model_copy(update=update)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server context for ``tls`` (paths resolved), or None for plain HTTP."""
        if self.tls is None:
            return None
        from agent_node.security.tls import server_context

        trust = self.trust_paths()
        return server_context(
            self.path(self.tls.cert),
            self.path(self.tls.key),
            trust,
            require_client_cert=not self.card_public,
        )

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """What this node calls peers with (delegation, push delivery): its own
        certificate, peers verified against the trust bundle; None without TLS."""
        if self.tls is None:
            return None
        from agent_node.security.tls import client_context

        trust = self.trust_paths()
        return client_context(self.path(self.tls.cert), self.path(self.tls.key), trust)

    @property
    def identity_from_cn(self) -> bool:
        """Whether certificates without a URI SAN are known by their CN (``tls``)."""
        return self.tls is not None and self.tls.identity_from_cn

    def trust_paths(self) -> list[Path]:
        """The trust bundle's files (resolved); none without TLS."""
        return [self.path(p) for p in self.tls.trust] if self.tls else []

    def path(self, relative: str) -> Path:
        """A path from the configuration, resolved against its directory."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def workflow_ref(self, skill: SkillConfig) -> str:
        """The skill's workflow reference with file paths made absolute."""
        target, colon, attr = skill.workflow.rpartition(":")
        if not colon:
            return str(self.path(skill.workflow).resolve())
        if target.endswith(".py") or "/" in target:
            return f"{self.path(target).resolve()}:{attr}"
        return skill.workflow

    @property
    def url(self) -> str:
        """The base URL peers reach this node at (``public_url``, else the listen address)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.listen.host
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{shown}:{self.listen.port}"

    def card_source(self) -> CardSource:
        if self.card is None:
            return CardSource(name=self.name, description=f"agent-node {self.name}")
        return _load_model(CardSource, self.path(self.card))


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate ``agent-node.yaml``."""
    file = Path(path)
    return _load_model(NodeConfig, file, base_dir=file.resolve().parent)


def _load_model(model: type[M], file: Path, **extra: Any) -> M:
    import yaml

    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse it"
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping at the top, not {type(raw).__name__}")
    try:
        return model.model_validate({**raw, **extra})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{file}: field {field!r}: {first['msg']}{more}") from None
