"""A node's configuration: ``agent-node.yaml``.

::

    name: researcher                    # the node's name (lease owners, logs)
    listen: {host: 127.0.0.1, port: 8470}   # grpc_port: 8471 also serves A2A over gRPC;
                                        # bindings: [jsonrpc, rest] (the HTTP ones served);
                                        # http2: false (over TLS: HTTP/1.1 only)
    public_url: https://researcher.example.org   # optional: what the card advertises
    store: sqlite:///.agent-node/researcher.db   # optional: default $AGENT_NODE_STORE
    card: cards/researcher.yaml         # the Agent Card source (name, skills' words)
    skills:                             # each skill runs one workflow
      - id: research
        workflow: workflows/research.yaml        # YAML file, file.py:attr or module:attr
        default: true                   # the skill a message without one goes to
      - {id: audit, workflow: audit.yaml, card: extended}   # shown only in the extended card
    tls:                                # mutual TLS (see certs/README.md)
      cert: certs/researcher.pem        # this node's certificate (chain) and key
      key: certs/researcher-key.pem
      trust: [certs/ca.pem]             # CA files peers' certificates must chain to
      identity_from_cn: false           # true: a certificate without a URI SAN is its CN
      reload_interval: 5                # seconds between looks for new files (SIGHUP: now)
    card_public: false                  # true: the card needs no client certificate
    policy:                             # who may do what, by certificate identity
      callers: ["*"]                    # skills without a rule of their own (default: any)
      skills: {research: ["spiffe://example.org/agent/coordinator"]}
      operators: ["spiffe://example.org/agent/ops-*"]   # the operator API (default: none)
      extended_card: ["*"]              # who may read the extended card (and operators)
    peers:                              # agents this node may delegate to
      - {name: writer, url: https://writer.example.org:8470,
         identity: "spiffe://example.org/agent/writer",   # optional: who it must be
         endpoints: [https://writer-2.example.org],   # optional: origins its card may name
         card_keys: [keys/writer.jwks.json],     # optional: keys that may sign its card
         require_signed_card: false}             # true: refuse its card unless signed so
    models:                             # model nodes (litellm)
      default: ollama_chat/llama3.2:1b   # when a node names none
      api_base: http://localhost:11434   # Ollama's URL (else $OLLAMA_API_BASE)
    mcp:                                # MCP servers whose tools tool/model nodes use
      - {name: files, command: [python, -m, my_files_server]}      # stdio
      - {name: search, url: http://127.0.0.1:9000/mcp}             # streamable HTTP
    limits:                             # the edge: every refusal is a clear error
      max_body_bytes: 1048576
      max_concurrent_per_caller: 64
      max_streams_per_caller: 256
      max_open_tasks_per_caller: 10000
    push:                               # A2A push notifications to callers
      allow: [127.0.0.1, localhost]     # hosts/networks allowed although not public
      attempts: 8                       # tries per change before giving up on it
      timeout: 10                       # seconds per POST
    stop_grace_seconds: 10              # on SIGTERM, how long running steps may finish

Paths are relative to the configuration file. Command-line flags override
the file (:meth:`NodeConfig.with_overrides`). Every mistake is a
:class:`~agent_node.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from agent_node.card_source import CardSource
from agent_node.config_file import read_model
from agent_node.errors import ConfigError
from agent_node.problems import describe_validation
from agent_node.settings import (
    ID_PATTERN,
    Limits,
    ListenConfig,
    McpServerConfig,
    ModelSettings,
    PeerConfig,
    PolicySettings,
    PushSettings,
    RetentionSettings,
    SkillConfig,
    TlsSettings,
)
from agent_node.settings_auth import AuthSettings
from agent_node.settings_telemetry import TelemetrySettings

if TYPE_CHECKING:
    import ssl

    from agent_node.security.tls_reload import CertificateFiles

__all__ = [
    "Limits",
    "ListenConfig",
    "McpServerConfig",
    "ModelSettings",
    "NodeConfig",
    "PeerConfig",
    "PolicySettings",
    "PushSettings",
    "SkillConfig",
    "TlsSettings",
    "load_config",
]


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=ID_PATTERN)
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
    #: Schemes callers may authenticate with besides a client certificate.
    auth: AuthSettings = AuthSettings()
    peers: list[PeerConfig] = []
    #: Read when a configuration is loaded, so $AGENT_NODE_MODEL is taken then.
    models: ModelSettings = Field(default_factory=ModelSettings)
    mcp: list[McpServerConfig] = []
    limits: Limits = Limits()
    #: How long finished executions are kept; None: forever.
    retention: RetentionSettings | None = None
    #: Metrics, traces and the drain (:mod:`agent_node.settings_telemetry`).
    telemetry: TelemetrySettings = TelemetrySettings()
    #: Seconds a stopping node (SIGTERM, once its requests are answered) lets
    #: the node visits it runs finish before it cuts them: it takes no more
    #: work meanwhile and starts no next visit. A visit cut runs again at its
    #: next claim (here or on another process), its effects with it.
    stop_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
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

    @model_validator(mode="after")
    def _card_keys_are_resolved(self) -> NodeConfig:
        """Peers' ``card_keys`` and secret files as paths from here, like every
        path of the file."""
        for peer in self.peers:
            peer.card_keys = [str(self.path(file)) for file in peer.card_keys]
            for secret in peer.auth.secret_files() if peer.auth else ():
                secret.file = str(self.path(str(secret.file)))
        return self

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        store: str | None = None,
        tls: TlsSettings | None = None,
        grpc_port: int | None = None,
        bindings: Sequence[str] | None = None,
    ) -> NodeConfig:
        given = {"host": host, "port": port, "grpc_port": grpc_port, "bindings": bindings}
        merged = {**self.listen.model_dump(), **{k: v for k, v in given.items() if v is not None}}
        try:
            listen = ListenConfig.model_validate(merged)
        except ValidationError as exc:
            said = describe_validation(exc, ListenConfig)
            raise ConfigError(f"listen (from the flags): {said}") from None
        update: dict[str, Any] = {"listen": listen}
        if store is not None:
            update["store"] = store
        if tls is not None:
            if self.tls is not None:
                # Flags name the files only: how identities are read and how
                # often the files are looked at stay the file's.
                kept = {"identity_from_cn", "reload_interval"} - tls.model_fields_set
                tls = tls.model_copy(update={k: getattr(self.tls, k) for k in kept})
            update["tls"] = tls
        return self.model_copy(update=update)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server context for ``tls`` (paths resolved), or None for plain
        HTTP. It follows its files (:mod:`agent_node.security.tls_reload`)."""
        files = self.certificate_files()
        if files is None:
            return None
        from agent_node.security.tls import http_alpn, server_context
        from agent_node.security.tls_reload import serving

        cert, key, trust = files.cert, files.key, files.trust
        # What the node's transport offers (agent_node.transport): a context
        # that follows new files must offer it too.
        alpn = http_alpn(self.listen.http2)
        mtls = self.auth.mtls

        # A client without a certificate is let in to be told so: the app
        # answers its every request 401 (the card too unless card_public).
        # auth.mtls: false asks for none at all (tokens and keys only).
        def build() -> ssl.SSLContext:
            return server_context(
                cert, key, trust, require_client_cert=False, ask_client_cert=mtls, alpn=alpn
            )

        return serving(files, build)

    def client_ssl_context(self, *, certificate: bool = True) -> ssl.SSLContext | None:
        """What this node calls peers with (delegation, push delivery): its own
        certificate (not with ``certificate=False``), peers verified against
        the trust bundle; None without TLS. It follows its files."""
        files = self.certificate_files()
        if files is None:
            return None
        from agent_node.security.tls import client_context
        from agent_node.security.tls_reload import calling

        cert, key, trust = files.cert, files.key, files.trust
        if not certificate:
            return calling(files, lambda: client_context(None, None, trust))
        return calling(files, lambda: client_context(cert, key, trust))

    def certificate_files(self) -> CertificateFiles | None:
        """The process's watch of ``tls``' files (paths resolved), as its
        contexts follow them; None without TLS."""
        if self.tls is None:
            return None
        from agent_node.security.tls_reload import watched

        return watched(
            self.path(self.tls.cert),
            self.path(self.tls.key),
            self.trust_paths(),
            interval=self.tls.reload_interval,
        )

    def tls_files(self) -> tuple[Path, Path, list[Path]] | None:
        """The node's certificate, key and trust files (resolved), as gRPC
        takes them; None without TLS."""
        if self.tls is None:
            return None
        return self.path(self.tls.cert), self.path(self.tls.key), self.trust_paths()

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

    @property
    def grpc_target(self) -> str | None:
        """Where peers reach this node's gRPC binding (``host:port``, as gRPC
        channels take it: the host of :attr:`url`), or None when not served."""
        if self.listen.grpc_port is None:
            return None
        from urllib.parse import urlsplit

        host = urlsplit(self.url).hostname or self.listen.host
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{self.listen.grpc_port}"

    def card_source(self) -> CardSource:
        if self.card is None:
            return CardSource(name=self.name, description=f"agent-node {self.name}")
        return read_model(CardSource, self.path(self.card), field="card")


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate ``agent-node.yaml``."""
    file = Path(path)
    return read_model(NodeConfig, file, missing=_make_one(), base_dir=file.resolve().parent)


def _make_one() -> str:
    """What to do without a configuration file: every command reading one takes ``--config``."""
    from agent_node.cli.invoked import command_name

    return f" (pass --config FILE, or make one with `{command_name()} init NAME`)"
