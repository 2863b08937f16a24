"""The A2A 0.3 Agent Card objects, as the 0.3 JSON Schema
(``specification/json/a2a.json`` at tag ``v0.3.0``) defines them.

Conventions as in :mod:`agent_node.a2a.protocol.models_v03`: a security
scheme's ``type`` is REQUIRED and selects it in the union; objects whose
shape did not change in 1.0 (``AgentProvider``, ...) are still defined
here, so the 0.3 schemas never move when a 1.0 model does. Apart from the
0.3 messages and tasks as :mod:`.card_models` is from :mod:`.models`: the
card is served and fetched on its own, its schema is a file of its own.
Like those models, nothing on the request path validates with these: the
node converts the card for 0.3 peers as plain JSON
(:mod:`.compat_card`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agent_node.a2a.protocol.models import WireModel

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
    "HTTPAuthSecurityScheme",
    "ImplicitOAuthFlow",
    "MutualTLSSecurityScheme",
    "OAuth2SecurityScheme",
    "OAuthFlows",
    "OpenIdConnectSecurityScheme",
    "PasswordOAuthFlow",
    "SecurityScheme",
]


class AgentInterface(WireModel):
    """Another endpoint: a ``url`` and its ``transport`` (``JSONRPC``, ``GRPC``, ``HTTP+JSON``)."""

    url: str
    transport: str


class AgentExtension(WireModel):
    """A protocol extension the agent supports; ``uri`` is required (not so in 1.0)."""

    uri: str
    description: str | None = None
    required: bool | None = None
    params: dict[str, Any] | None = None


class AgentCapabilities(WireModel):
    """Optional capabilities (1.0 moved the extended card flag in here)."""

    streaming: bool | None = None
    push_notifications: bool | None = None
    state_transition_history: bool | None = None
    extensions: list[AgentExtension] | None = None


class AgentProvider(WireModel):
    """The organization that runs the agent."""

    organization: str
    url: str


class AgentSkill(WireModel):
    """Something the agent is good at; ``security`` as in :class:`AgentCard`."""

    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security: list[dict[str, list[str]]] | None = None


class AgentCardSignature(WireModel):
    """A JWS (RFC 7515, JSON form) over the card."""

    protected: str
    signature: str
    header: dict[str, Any] | None = None


class APIKeySecurityScheme(WireModel):
    """An API key; ``in`` is ``query``, ``header`` or ``cookie`` (1.0: ``location``)."""

    type: Literal["apiKey"]
    in_: Literal["cookie", "header", "query"] = Field(alias="in")
    name: str
    description: str | None = None


class HTTPAuthSecurityScheme(WireModel):
    """HTTP authentication (``scheme`` as in RFC 7235, e.g. ``Bearer``)."""

    type: Literal["http"]
    scheme: str
    bearer_format: str | None = None
    description: str | None = None


class AuthorizationCodeOAuthFlow(WireModel):
    """The OAuth 2.0 authorization code flow."""

    authorization_url: str
    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class ClientCredentialsOAuthFlow(WireModel):
    """The OAuth 2.0 client credentials flow."""

    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class ImplicitOAuthFlow(WireModel):
    """The OAuth 2.0 implicit flow."""

    authorization_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class PasswordOAuthFlow(WireModel):
    """The OAuth 2.0 password flow."""

    token_url: str
    refresh_url: str | None = None
    scopes: dict[str, str]


class OAuthFlows(WireModel):
    """Any of four OAuth 2.0 flows (1.0: exactly one, of five)."""

    authorization_code: AuthorizationCodeOAuthFlow | None = None
    client_credentials: ClientCredentialsOAuthFlow | None = None
    implicit: ImplicitOAuthFlow | None = None
    password: PasswordOAuthFlow | None = None


class OAuth2SecurityScheme(WireModel):
    """OAuth 2.0."""

    type: Literal["oauth2"]
    flows: OAuthFlows
    oauth2_metadata_url: str | None = None
    description: str | None = None


class OpenIdConnectSecurityScheme(WireModel):
    """OpenID Connect discovery."""

    type: Literal["openIdConnect"]
    open_id_connect_url: str
    description: str | None = None


class MutualTLSSecurityScheme(WireModel):
    """Mutual TLS (1.0: ``mtlsSecurityScheme``)."""

    type: Literal["mutualTLS"]
    description: str | None = None


SecurityScheme = Annotated[
    APIKeySecurityScheme
    | HTTPAuthSecurityScheme
    | OAuth2SecurityScheme
    | OpenIdConnectSecurityScheme
    | MutualTLSSecurityScheme,
    Field(discriminator="type"),
]
"""One security scheme, flat, chosen by ``type`` (1.0 wraps it in a key per kind)."""


class AgentCard(WireModel):
    """The agent's self-description, served at ``/.well-known/agent-card.json``.

    ``url`` is the preferred endpoint, reached with ``preferredTransport``
    (absent: ``JSONRPC``); ``additionalInterfaces`` lists the others.
    ``security`` is OpenAPI's: a list (OR) of ``{scheme name: scopes}`` (AND).
    """

    name: str
    description: str
    url: str
    version: str
    protocol_version: str
    preferred_transport: str | None = None
    additional_interfaces: list[AgentInterface] | None = None
    capabilities: AgentCapabilities
    security_schemes: dict[str, SecurityScheme] | None = None
    security: list[dict[str, list[str]]] | None = None
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[AgentSkill]
    supports_authenticated_extended_card: bool | None = None
    provider: AgentProvider | None = None
    documentation_url: str | None = None
    icon_url: str | None = None
    signatures: list[AgentCardSignature] | None = None
