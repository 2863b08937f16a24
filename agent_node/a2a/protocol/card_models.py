"""The A2A 1.0 Agent Card objects, as ``specification/a2a.proto`` maps to JSON.

Same conventions as :mod:`agent_node.a2a.protocol.models` (ProtoJSON names, unknown
fields kept, absent stays absent, ``oneof`` checked). Serving the card to the
TCK requires that it carries no field outside the 1.0 schema: the 0.3 fields
are added at the edge by :func:`agent_node.a2a.protocol.compat.card_v03_fields`, never
stored here.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from agent_node.a2a.protocol.models import WireModel, exactly_one

__all__ = [
    "APIKeySecurityScheme",
    "AgentCapabilities",
    "AgentCard",
    "AgentCardSignature",
    "AgentExtension",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "AuthorizationCodeOAuthFlow",
    "ClientCredentialsOAuthFlow",
    "DeviceCodeOAuthFlow",
    "HTTPAuthSecurityScheme",
    "ImplicitOAuthFlow",
    "MutualTlsSecurityScheme",
    "OAuth2SecurityScheme",
    "OAuthFlows",
    "OpenIdConnectSecurityScheme",
    "PasswordOAuthFlow",
    "SecurityRequirement",
    "SecurityScheme",
    "StringList",
]


class AgentInterface(WireModel):
    """Where and how the agent is reached: ``protocolBinding`` is ``JSONRPC``, ``GRPC`` or
    ``HTTP+JSON``; ``protocolVersion`` is the major.minor, e.g. ``"1.0"`` or ``"0.3"``."""

    url: str
    protocol_binding: str
    tenant: str | None = None
    protocol_version: str


class AgentExtension(WireModel):
    """A protocol extension the agent supports; ``required`` ones must be understood."""

    uri: str | None = None
    description: str | None = None
    required: bool | None = None
    params: dict[str, Any] | None = None


class AgentCapabilities(WireModel):
    """Optional capabilities. ``extendedAgentCard`` replaces 0.3's top-level
    ``supportsAuthenticatedExtendedCard``."""

    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: list[AgentExtension] | None = None
    extended_agent_card: bool | None = None


class AgentProvider(WireModel):
    """The organization that runs the agent."""

    url: str
    organization: str


class StringList(WireModel):
    """A list of strings. The JSON key is ``list``; the attribute is ``values``
    (choice: ``list`` would shadow the builtin in the class body)."""

    values: list[str] = Field(alias="list")


class SecurityRequirement(WireModel):
    """Scheme name -> required scopes. 0.3 wrote ``{name: [scopes]}``; 1.0 writes
    ``{"schemes": {name: {"list": [scopes]}}}``."""

    schemes: dict[str, StringList]


class APIKeySecurityScheme(WireModel):
    """An API key; ``location`` is ``query``, ``header`` or ``cookie`` (0.3: ``in``)."""

    description: str | None = None
    location: str
    name: str


class HTTPAuthSecurityScheme(WireModel):
    """HTTP authentication (``scheme`` as in RFC 7235, e.g. ``Bearer``)."""

    description: str | None = None
    scheme: str
    bearer_format: str | None = None


class AuthorizationCodeOAuthFlow(WireModel):
    """The OAuth 2.0 authorization code flow."""

    authorization_url: str
    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]
    pkce_required: bool | None = None


class ClientCredentialsOAuthFlow(WireModel):
    """The OAuth 2.0 client credentials flow."""

    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class ImplicitOAuthFlow(WireModel):
    """The OAuth 2.0 implicit flow (deprecated in the proto)."""

    authorization_url: str | None = None
    refresh_url: str | None = None
    scopes: dict[str, str] | None = None


class PasswordOAuthFlow(WireModel):
    """The OAuth 2.0 password flow (deprecated in the proto)."""

    token_url: str | None = None
    refresh_url: str | None = None
    scopes: dict[str, str] | None = None


class DeviceCodeOAuthFlow(WireModel):
    """The OAuth 2.0 device code flow (RFC 8628)."""

    device_authorization_url: str
    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class OAuthFlows(WireModel):
    """Exactly one OAuth 2.0 flow (a ``oneof`` in 1.0; 0.3 allowed several)."""

    authorization_code: AuthorizationCodeOAuthFlow | None = None
    client_credentials: ClientCredentialsOAuthFlow | None = None
    implicit: ImplicitOAuthFlow | None = None
    password: PasswordOAuthFlow | None = None
    device_code: DeviceCodeOAuthFlow | None = None

    @model_validator(mode="after")
    def _one_flow(self) -> Self:
        exactly_one(self, "OAuthFlows.flow", _FLOWS)
        return self


_FLOWS = ("authorization_code", "client_credentials", "implicit", "password", "device_code")


class OAuth2SecurityScheme(WireModel):
    """OAuth 2.0."""

    description: str | None = None
    flows: OAuthFlows
    oauth2_metadata_url: str | None = None


class OpenIdConnectSecurityScheme(WireModel):
    """OpenID Connect discovery."""

    description: str | None = None
    open_id_connect_url: str


class MutualTlsSecurityScheme(WireModel):
    """Mutual TLS (0.3: ``{"type": "mutualTLS"}``)."""

    description: str | None = None


class SecurityScheme(WireModel):
    """Exactly one scheme, keyed by kind: ``apiKeySecurityScheme``, ``httpAuthSecurityScheme``,
    ``oauth2SecurityScheme``, ``openIdConnectSecurityScheme`` or ``mtlsSecurityScheme``.

    0.3 used one flat object with a ``type`` discriminator instead.
    """

    api_key_security_scheme: APIKeySecurityScheme | None = None
    http_auth_security_scheme: HTTPAuthSecurityScheme | None = None
    oauth2_security_scheme: OAuth2SecurityScheme | None = None
    open_id_connect_security_scheme: OpenIdConnectSecurityScheme | None = None
    mtls_security_scheme: MutualTlsSecurityScheme | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> Self:
        exactly_one(self, "SecurityScheme.scheme", _SCHEMES)
        return self


_SCHEMES = (
    "api_key_security_scheme",
    "http_auth_security_scheme",
    "oauth2_security_scheme",
    "open_id_connect_security_scheme",
    "mtls_security_scheme",
)


class AgentSkill(WireModel):
    """Something the agent is good at; ``id``, ``name``, ``description``, ``tags`` required."""

    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security_requirements: list[SecurityRequirement] | None = None


class AgentCardSignature(WireModel):
    """A JWS (RFC 7515, JSON form) over the JCS-canonical card without ``signatures``."""

    protected: str
    signature: str
    header: dict[str, Any] | None = None


class AgentCard(WireModel):
    """The agent's self-description, served at ``/.well-known/agent-card.json``.

    ``supportedInterfaces`` is ordered, the first entry preferred. REQUIRED
    in the proto, hence without defaults: ``name``, ``description``,
    ``supportedInterfaces``, ``version``, ``capabilities``,
    ``defaultInputModes``, ``defaultOutputModes``, ``skills``.
    """

    name: str
    description: str
    supported_interfaces: list[AgentInterface] = Field(min_length=1)
    provider: AgentProvider | None = None
    version: str
    documentation_url: str | None = None
    capabilities: AgentCapabilities
    security_schemes: dict[str, SecurityScheme] | None = None
    security_requirements: list[SecurityRequirement] | None = None
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[AgentSkill]
    signatures: list[AgentCardSignature] | None = None
    icon_url: str | None = None
