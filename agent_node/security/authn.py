"""Who calls: the schemes a node accepts besides mutual TLS, as one identity.

``auth:`` in ``agent-node.yaml`` turns on API keys (:mod:`.api_keys`, in the
``X-API-Key`` header by default) and bearer JWTs (:mod:`.jwt_auth`, in
``Authorization: Bearer``); mutual TLS stays on (the node's TLS asks for a
client certificate without requiring one, so a caller without one gets to
show a key or a token) unless ``auth.mtls: false`` (then it asks for none,
and the card declares no mTLS scheme). Every scheme yields
one identity string, so ``policy:``, task ownership, ``metadata.caller``,
rate limits and the operator API treat callers alike whatever they showed.

A request's identity is its client certificate's when it has one (the TLS
handshake proved it); else the credentials it carries are checked, one
scheme at a time, and the first present decides: a key or token that does
not hold is refused (401, the error saying why), never taken for "no
credentials". A request with none is left without identity, which the
node's guard refuses wherever an identity is required (401 as well).

:meth:`Authenticator.challenge` is the ``WWW-Authenticate`` value of those
401s: one challenge per scheme accepted (RFC 9110 §11.6.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent_node.security.refused import Refused
from agent_node.settings_auth import AuthSettings, JwtSettings

if TYPE_CHECKING:  # PyJWT is imported only when auth.jwt is set
    from agent_node.security.api_keys import ApiKeys
    from agent_node.security.jwt_auth import JwtVerifier

__all__ = ["Authenticator", "Refused", "authenticator"]


@dataclass
class Authenticator:
    """The schemes of ``auth:`` (each None when off)."""

    api_keys: ApiKeys | None = None
    #: The header that carries API keys (lowercase).
    api_key_header: str = "x-api-key"
    jwt: JwtVerifier | None = None
    #: The realm named in challenges (the node's name).
    realm: str = "agent-node"

    @property
    def enabled(self) -> bool:
        return self.api_keys is not None or self.jwt is not None

    async def identify(self, header: Callable[[str], str | None]) -> tuple[str, str] | None:
        """The identity the request's credentials name and the scheme that
        named it (``bearer``, ``apiKey``); None when it carries none.
        ``header(name)`` gives a request header (lowercase name) or None.
        :class:`Refused` for credentials that do not hold."""
        authorization = header("authorization")
        if authorization and self.jwt is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return await self.jwt.identity_of(token.strip()), "bearer"
        if self.api_keys is not None:
            key = header(self.api_key_header)
            if key is not None:
                identity = self.api_keys.identity_of(key.strip())
                if identity is None:
                    raise Refused("the API key is not valid")
                return identity, "apiKey"
        if authorization and self.jwt is not None:
            raise Refused("the Authorization header holds no bearer token")
        return None

    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value of a 401 (None: no scheme to name)."""
        challenges = []
        if self.jwt is not None:
            challenges.append(f'Bearer realm="{self.realm}"')
        if self.api_keys is not None:
            challenges.append(f'ApiKey realm="{self.realm}", header="{self.api_key_header}"')
        return ", ".join(challenges) or None


def headers_of(items: Mapping[str, str]) -> Callable[[str], str | None]:
    """``header(name)`` over a mapping whose keys are lowercase names."""
    return items.get


def authenticator(
    auth: AuthSettings, resolve: Callable[[str], Path], realm: str
) -> Authenticator | None:
    """The :class:`Authenticator` of ``auth:`` (paths resolved by ``resolve``);
    None when it turns on no scheme."""
    if auth.api_keys is None and auth.jwt is None:
        return None
    found = Authenticator(realm=realm)
    if auth.api_keys is not None:
        from agent_node.security.api_keys import ApiKeys

        found.api_keys = ApiKeys(resolve(auth.api_keys.file))
        found.api_key_header = auth.api_keys.header.lower()
    if auth.jwt is not None:
        found.jwt = _verifier(auth.jwt, resolve)
    return found


def _verifier(settings: JwtSettings, resolve: Callable[[str], Path]) -> JwtVerifier:
    import ssl

    import httpx

    from agent_node.security.jwt_auth import JwtVerifier

    ca = resolve(settings.jwks_ca) if settings.jwks_ca else None

    def http() -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        return httpx.AsyncClient(verify=verify, timeout=10, trust_env=False, follow_redirects=False)

    url = settings.jwks_url
    if settings.oidc:
        url = settings.oidc
        if "/.well-known/" not in url:
            url = url.rstrip("/") + "/.well-known/openid-configuration"
    return JwtVerifier(
        issuer=settings.issuer,
        audience=settings.audience,
        algorithms=settings.algorithms,
        identity=settings.identity,
        leeway=settings.leeway,
        jwks_file=resolve(settings.jwks_file) if settings.jwks_file else None,
        jwks_url=url,
        oidc=bool(settings.oidc),
        jwks_ttl=settings.jwks_ttl,
        http=http,
    )
