"""What we present to a peer besides our certificate (``peers[].auth``).

One scheme per peer: a bearer token, an API key, or OAuth 2.0 client
credentials. Secrets are read where the configuration says (an environment
variable or a file) each time they are used, so a rotated one is taken
without a restart, and never written to the store, the log or an error.

* ``bearer``: ``Authorization: Bearer <token>``.
* ``api_key``: where the peer's card says — its ``apiKeySecurityScheme``'s
  ``location`` (``header``, ``query`` or ``cookie``) and ``name`` — else in the
  ``api_key_header`` header.
* ``oauth2``: a token from ``token_url`` (``grant_type=client_credentials``,
  the client authenticated by HTTP Basic as RFC 6749 §2.3.1 prefers),
  kept until a minute before it expires and shared by every call to the
  peer; one fetch at a time. :meth:`PeerCredentials.renew` drops it, for the
  caller to try once more when the peer answers 401 (a token revoked early).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent_node.a2a.peers.peer_errors import PeerError, excerpt
from agent_node.settings_auth import OAuth2Client, PeerAuth, SecretRef

__all__ = ["NOTHING", "PeerCredentials", "Presented"]

#: A token is renewed this many seconds before it expires.
EARLY = 60.0
#: A token's life when the token endpoint does not say (``expires_in``).
DEFAULT_LIFE = 300.0


@dataclass(frozen=True)
class Presented:
    """The credentials of one request: headers (a cookie as ``Cookie``) and
    query parameters."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    #: Whether our client certificate goes along (``auth.certificate``).
    certificate: bool = True


#: No credentials besides our certificate.
NOTHING = Presented()


class PeerCredentials:
    """The credentials of peer ``peer`` (its ``auth:``); ``http`` makes the
    client that fetches OAuth 2.0 tokens; ``label`` names their user in
    errors (``peer 'judge'`` by default)."""

    def __init__(
        self,
        peer: str,
        auth: PeerAuth,
        http: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float] = time.time,
        *,
        label: str | None = None,
    ) -> None:
        self.peer = peer
        self.label = label or f"peer {peer!r}"
        self.auth = auth
        self._http = http
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    @property
    def scheme(self) -> str:
        """``bearer``, ``apiKey`` or ``oauth2`` (what ``inspect`` shows)."""
        return self.auth.scheme

    async def present(self, card: Mapping[str, Any] | None = None) -> Presented:
        """What to send with a request to the peer (``card``: its card, whose
        apiKey scheme says where a key goes)."""
        certificate = self.auth.certificate
        if self.auth.bearer is not None:
            token = self._secret(self.auth.bearer)
            return Presented({"Authorization": f"Bearer {token}"}, certificate=certificate)
        if self.auth.api_key is not None:
            key = self._secret(self.auth.api_key)
            location, name = _api_key_place(card, self.auth.api_key_header)
            if location == "query":
                return Presented(query={name: key}, certificate=certificate)
            if location == "cookie":
                return Presented({"Cookie": f"{name}={key}"}, certificate=certificate)
            return Presented({name: key}, certificate=certificate)
        assert self.auth.oauth2 is not None
        token = await self._oauth2(self.auth.oauth2)
        return Presented({"Authorization": f"Bearer {token}"}, certificate=certificate)

    def renew(self) -> bool:
        """Drop a cached token after the peer refused it; True when a call
        made again would present another (OAuth 2.0), False otherwise."""
        if self.auth.oauth2 is None:
            return False
        self._token = None
        return True

    def _secret(self, ref: SecretRef) -> str:
        if ref.env is not None:
            value = os.environ.get(ref.env, "").strip()
            where = f"the environment variable {ref.env}"
        else:
            try:
                value = Path(str(ref.file)).read_text().strip()
            except OSError as exc:
                raise PeerError(
                    f"{self.label}: cannot read its secret file {ref.file}: {exc.strerror}",
                    transient=False,
                ) from None
            where = f"the file {ref.file}"
        if not value:
            raise PeerError(f"{self.label}: its secret ({where}) is empty", transient=False)
        return value

    async def _oauth2(self, client: OAuth2Client) -> str:
        token = self._token
        if token is not None and self._clock() < token[1]:
            return token[0]
        async with self._lock:
            token = self._token
            if token is not None and self._clock() < token[1]:
                return token[0]
            value, life = await self._fetch(client)
            self._token = (value, self._clock() + max(0.0, life - EARLY))
            return value

    async def _fetch(self, client: OAuth2Client) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if client.scopes:
            form["scope"] = " ".join(client.scopes)
        if client.audience:
            form["audience"] = client.audience
        secret = self._secret(client.client_secret)
        try:
            async with self._http() as http:
                response = await http.post(
                    client.token_url,
                    data=form,
                    auth=(client.client_id, secret),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise PeerError(
                f"{self.label}: its token endpoint is unreachable: {type(exc).__name__}",
                transient=True,
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if response.status_code == 200 and isinstance(token, str) and token:
            life = answer.get("expires_in") if isinstance(answer, dict) else None
            return token, float(life) if isinstance(life, int | float) else DEFAULT_LIFE
        said = answer.get("error") if isinstance(answer, dict) else None
        said = str(said) if said else excerpt(response.text) or "no answer"
        raise PeerError(
            f"{self.label}: its token endpoint refused us (HTTP"
            f" {response.status_code}: {said[:80]})",
            transient=response.status_code >= 500 or response.status_code == 429,
        )


def _api_key_place(card: Mapping[str, Any] | None, default: str) -> tuple[str, str]:
    """Where the card's API key scheme wants the key: (location, name)."""
    schemes = card.get("securitySchemes") if card else None
    for scheme in (schemes or {}).values() if isinstance(schemes, Mapping) else ():
        body = scheme.get("apiKeySecurityScheme") if isinstance(scheme, Mapping) else None
        if isinstance(body, Mapping) and body.get("name"):
            location = str(body.get("location") or "header").lower()
            if location in ("header", "query", "cookie"):
                return location, str(body["name"])
    return "header", default


def requirements(
    card: Mapping[str, Any], auth: PeerAuth | None, certificate: bool
) -> list[tuple[str, bool]]:
    """The card's security requirements (alternatives, any one sufficing),
    each in words and whether what we would present meets it: our
    certificate (``certificate``) and the peer's ``auth:``."""
    schemes = card.get("securitySchemes") or {}
    found: list[tuple[str, bool]] = []
    for requirement in card.get("securityRequirements") or []:
        names = list((requirement.get("schemes") or {}) if isinstance(requirement, dict) else {})
        kinds = [_kind(schemes.get(name)) for name in names]
        met = all(_meets(kind, auth, certificate) for kind in kinds)
        found.append((" and ".join(f"{n} ({k})" for n, k in zip(names, kinds, strict=True)), met))
    return found


def _kind(scheme: Any) -> str:
    """``mtls``, ``bearer``, ``apiKey``, ``oauth2``, ``openIdConnect`` or ``unknown``."""
    if not isinstance(scheme, Mapping):
        return "unknown"
    if "mtlsSecurityScheme" in scheme:
        return "mtls"
    if "apiKeySecurityScheme" in scheme:
        return "apiKey"
    if "oauth2SecurityScheme" in scheme:
        return "oauth2"
    if "openIdConnectSecurityScheme" in scheme:
        return "openIdConnect"
    http = scheme.get("httpAuthSecurityScheme")
    if isinstance(http, Mapping) and str(http.get("scheme", "")).lower() == "bearer":
        return "bearer"
    return "unknown"


def _meets(kind: str, auth: PeerAuth | None, certificate: bool) -> bool:
    if kind == "mtls":
        return certificate
    if auth is None:
        return False
    if kind == "apiKey":
        return auth.api_key is not None
    # A bearer token: ours as configured, or one an OAuth 2.0 / OIDC issuer gave us.
    return kind in ("bearer", "oauth2", "openIdConnect") and (
        auth.bearer is not None or auth.oauth2 is not None
    )
