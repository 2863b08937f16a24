"""The ``auth:`` settings: how callers prove who they are to a node, and how
the node proves it to its peers (``peers[].auth``), besides certificates.

Secrets are never written here: a :class:`SecretRef` says where one is read.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ASYMMETRIC",
    "ApiKeySettings",
    "AuthSettings",
    "JwtSettings",
    "OAuth2Client",
    "PeerAuth",
    "PushAuth",
    "SecretRef",
]

#: The algorithms a bearer JWT may be signed with: asymmetric ones only.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ISSUER_URL = re.compile(
    r"^(https://\S+|http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/\S*)?)$"
)


class ApiKeySettings(BaseModel):
    """API keys (``auth.api_keys``): see :mod:`agent_node.security.api_keys`."""

    model_config = ConfigDict(extra="forbid")

    #: The key file, relative to the configuration: names, identities and
    #: hashes only (``agent-node keys add NAME`` prints a new key once).
    file: str = Field(default="api-keys.yaml", min_length=1)
    #: The request header (gRPC: metadata) that carries a key.
    header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]+$")


class JwtSettings(BaseModel):
    """Bearer JWTs of one issuer (``auth.jwt``): see :mod:`agent_node.security.jwt_auth`."""

    model_config = ConfigDict(extra="forbid")

    #: The ``iss`` a token must carry.
    issuer: str = Field(min_length=1)
    #: What ``aud`` must hold (this agent, as the issuer names it).
    audience: str = Field(min_length=1)
    #: Asymmetric ones only (RS*, PS*, ES*, EdDSA).
    algorithms: list[str] = Field(default=["RS256", "ES256", "EdDSA"], min_length=1)
    #: Where the issuer's keys are — exactly one: a JWK Set URL, a JWK Set
    #: file (relative to the configuration), or the issuer's OpenID Connect
    #: discovery document (``…/.well-known/openid-configuration``).
    jwks_url: str | None = None
    jwks_file: str | None = None
    oidc: str | None = None
    #: A CA file to verify those URLs' servers with; default: the system's.
    jwks_ca: str | None = None
    #: The identity a token names: its claims filled in (``{iss}#{sub}``…).
    identity: str = Field(default="{sub}", min_length=1)
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway: float = Field(default=60.0, ge=0, le=600)
    #: Seconds a fetched JWK Set is used before it is fetched again.
    jwks_ttl: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtSettings:
        sources = [s for s in (self.jwks_url, self.jwks_file, self.oidc) if s]
        if len(sources) != 1:
            raise ValueError("give exactly one of jwks_url, jwks_file or oidc")
        wrong = sorted(set(self.algorithms) - ASYMMETRIC)
        if wrong:
            raise ValueError(
                f"algorithms must be asymmetric ({', '.join(sorted(ASYMMETRIC))}); not {wrong}"
            )
        for url in (self.jwks_url, self.oidc):
            if url and not _ISSUER_URL.match(url):
                raise ValueError(f"{url!r}: an https URL (http only on loopback)")
        return self


class AuthSettings(BaseModel):
    """How callers may prove who they are besides a client certificate (``auth:``)."""

    model_config = ConfigDict(extra="forbid")

    api_keys: ApiKeySettings | None = None
    jwt: JwtSettings | None = None
    #: Client certificates name callers (with TLS). False: the node's TLS
    #: asks for none and the card declares none; tokens or keys only.
    mtls: bool = True

    @model_validator(mode="after")
    def _someone_authenticates(self) -> AuthSettings:
        if not self.mtls and self.api_keys is None and self.jwt is None:
            raise ValueError("auth.mtls: false needs another scheme (auth.jwt or auth.api_keys)")
        return self


class SecretRef(BaseModel):
    """Where a secret is read, when it is used: never written in the configuration."""

    model_config = ConfigDict(extra="forbid")

    #: An environment variable holding it.
    env: str | None = Field(default=None, min_length=1)
    #: A file holding it (relative to the configuration), surrounding spaces ignored.
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_place(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


class OAuth2Client(BaseModel):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched, cached, refreshed."""

    model_config = ConfigDict(extra="forbid")

    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    scopes: list[str] = []
    #: Sent as ``audience`` when the token endpoint wants one (Auth0, Okta…).
    audience: str | None = None

    @field_validator("token_url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not _ISSUER_URL.match(url):
            raise ValueError(f"{url!r}: an https URL (http only on loopback)")
        return url


class PeerAuth(BaseModel):
    """What we present to a peer besides our certificate: exactly one scheme."""

    model_config = ConfigDict(extra="forbid")

    #: ``Authorization: Bearer …``.
    bearer: SecretRef | None = None
    #: An API key, where the peer's card's apiKey scheme says (else ``api_key_header``).
    api_key: SecretRef | None = None
    api_key_header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]+$")
    oauth2: OAuth2Client | None = None
    #: Present our client certificate too (False: the token or key alone, for
    #: a peer whose TLS would refuse a certificate its CAs did not issue).
    #: Over gRPC the certificate always goes along.
    certificate: bool = True

    @model_validator(mode="after")
    def _one_scheme(self) -> PeerAuth:
        if sum(x is not None for x in (self.bearer, self.api_key, self.oauth2)) != 1:
            raise ValueError("give exactly one of bearer, api_key or oauth2")
        return self

    @property
    def scheme(self) -> str:
        return "bearer" if self.bearer else "apiKey" if self.api_key else "oauth2"

    def secret_files(self) -> list[SecretRef]:
        found = [self.bearer, self.api_key, self.oauth2.client_secret if self.oauth2 else None]
        return [ref for ref in found if ref is not None and ref.file is not None]


class PushAuth(BaseModel):
    """What pushes to URLs under ``url`` present (``push.credentials``): a
    bearer token, an API key (in ``api_key_header``) or OAuth 2.0 client
    credentials, as ``peers[].auth`` says them."""

    model_config = ConfigDict(extra="forbid")

    #: A URL prefix: ``https://hooks.example.com/`` (scheme, host, port, path).
    url: str = Field(pattern=r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    auth: PeerAuth

    @model_validator(mode="after")
    def _with_our_certificate(self) -> PushAuth:
        if not self.auth.certificate:
            raise ValueError(
                "push.credentials: pushes always present the node's certificate over TLS"
                " (certificate: false is for peers)"
            )
        return self

    def covers(self, url: str) -> bool:
        """Whether ``url`` is under this prefix (scheme and host case-insensitive)."""
        scheme, _, rest = self.url.partition("://")
        host, slash, path = rest.partition("/")
        their_scheme, _, their_rest = url.partition("://")
        their_host, their_slash, their_path = their_rest.partition("/")
        return (
            their_scheme.lower() == scheme.lower()
            and their_host.lower() == host.lower()
            and (slash + path == "" or (their_slash + their_path).startswith(slash + path))
        )
