"""Peers' Agent Cards: fetched over mutual TLS, validated, cached, chosen by skill.

:func:`fetch_card` reads one card: ``/.well-known/agent-card.json``, else
(404) the legacy ``/.well-known/agent.json``; at most :data:`MAX_CARD_BYTES`;
a JSON object that validates as a 1.0 card once a 0.3 card is converted (a
card with ``supportedInterfaces`` is 1.0, even if it carries the 0.3 fields
too, as ours does). It checks who answered: the identity the server's TLS
certificate names must be the one configured for the peer. When the card is
signed, every signature whose key can be found must verify
(:mod:`agent_node.a2a.peers.signing`; keys: the trust bundle, the peer's
``card_keys`` and a JWK Set on its own origin, :mod:`agent_node.a2a.peers.card_keys`),
before any conversion; a peer that requires it must have one that does. The
interface called is ours
to choose: only on the configured URL's origin or the peer's ``endpoints``
(:mod:`agent_node.a2a.peers.endpoints`).

:class:`~agent_node.a2a.peers.directory.Directory` holds the configured peers'
cards, revalidating them as their ``Cache-Control`` and ``ETag`` say.

Every failure is a :class:`PeerUnavailable` naming the peer, the URL and
the reason; ``permanent`` when the peer is not who it must be, or its card
points elsewhere (trying again will not help).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from agent_node.a2a.peers.card_keys import JwksCache, key_lookup
from agent_node.a2a.peers.client import IdentityMismatch, expecting, server_identity, shown_identity
from agent_node.a2a.peers.endpoints import (
    Binding,
    Choice,
    NoInterface,
    Origins,
    Version,
    choose,
    dialect,
    in_words,
    origin_of,
)
from agent_node.a2a.peers.signing import CardSignatureError, verify_card
from agent_node.a2a.protocol.card_models import AgentCard
from agent_node.a2a.protocol.compat_card import card_from_v03
from agent_node.a2a.protocol.jws import PublicKey
from agent_node.content_length import declared_over
from agent_node.errors import RuntimeFailure

__all__ = [
    "CARD_PATH",
    "DEFAULT_MAX_AGE",
    "LEGACY_CARD_PATH",
    "MAX_CARD_BYTES",
    "PeerCard",
    "PeerUnavailable",
    "fetch_card",
    "peer_identity",
]

log = logging.getLogger(__name__)

CARD_PATH = "/.well-known/agent-card.json"
#: Where 0.2 agents (and JamJet) publish theirs.
LEGACY_CARD_PATH = "/.well-known/agent.json"
MAX_CARD_BYTES = 1024 * 1024
#: Seconds a card without ``Cache-Control: max-age`` is reused.
DEFAULT_MAX_AGE = 300.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_REUSE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[,=]|$)", re.IGNORECASE)

Clock = Callable[[], float]


@dataclass(frozen=True)
class PeerCard:
    """A peer's validated card, and what it takes to call the peer."""

    #: The peer's configured name (the URL for an ad-hoc fetch).
    name: str
    base_url: str
    #: The card as A2A 1.0 JSON (a 0.3 card converted).
    card: Mapping[str, Any]
    #: The URL to call: the card's preferred interface of ``binding`` and ``version``.
    endpoint: str
    #: What to speak: 1.0 when the card offers a 1.0 interface, else 0.3.
    version: Version
    #: The identity the server's TLS certificate named (None over plain HTTP).
    identity: str | None
    etag: str | None
    fetched_at: float
    #: When the card must be revalidated before it is used again.
    expires_at: float
    #: Who a verified signature names (a certificate's identity, or who vouches
    #: for its key); None when unsigned, or signed only by keys we cannot find
    #: or by a bare key.
    signed_by: str | None
    #: Where the card was read (the well-known path that answered).
    card_url: str
    #: The binding of ``endpoint``: JSON-RPC when the card offers it, else
    #: HTTP+JSON, else gRPC (:mod:`.endpoints`).
    binding: Binding = "JSONRPC"

    @property
    def dialect(self) -> str:
        """What a delegation's row keeps of it (:func:`~.endpoints.dialect`)."""
        return dialect(self.binding, self.version)

    def skills(self) -> list[str]:
        """The ids of the card's skills, in its order."""
        return [str(skill.get("id")) for skill in self.card.get("skills", [])]

    def has(self, *, skill: str | None = None, tag: str | None = None) -> bool:
        """Whether one of its skills has id ``skill`` and tag ``tag`` (each when given)."""
        return any(
            (skill is None or entry.get("id") == skill)
            and (tag is None or tag in (entry.get("tags") or []))
            for entry in self.card.get("skills", [])
        )


class PeerUnavailable(RuntimeFailure):
    """A peer's card could not be fetched, is invalid, or came from the wrong
    identity; or no peer offers what was asked (``peer`` and ``url`` None).
    ``permanent``: the peer is not who it must be, or its card points where
    we may not go — a matter for its operator or ours, not for a retry. A
    permanent reason names identities and origins, never a URL: callers are
    shown it whole."""

    def __init__(
        self,
        reason: str,
        *,
        peer: str | None = None,
        url: str | None = None,
        permanent: bool = False,
    ) -> None:
        self.peer = peer
        self.url = url
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"peer {peer!r} ({url}): {reason}" if peer else reason)


def peer_identity(response: httpx.Response) -> str | None:
    """The identity of the certificate the server of ``response`` presented,
    as the client's rule reads it (:func:`~agent_node.a2a.peers.client.server_identity`);
    None over plain HTTP. Read it while the response's connection is open
    (inside ``client.stream``, or before the client closes)."""
    return server_identity(response)


async def fetch_card(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    name: str | None = None,
    expected_identity: str | None = None,
    endpoints: Sequence[str] = (),
    previous: PeerCard | None = None,
    trust: Sequence[Path] = (),
    card_keys: Mapping[str, PublicKey] | None = None,
    jwks: JwksCache | None = None,
    require_signature: bool = False,
    clock: Clock = time.time,
) -> PeerCard:
    """Fetch, check and validate the card of the agent at ``base_url``.

    ``endpoints``: origins besides ``base_url``'s its card may send us to.
    ``previous`` (an earlier result) is revalidated: its ETag is sent as
    ``If-None-Match`` to the URL it came from, and a 304 returns it with a new
    expiry. Signatures are checked with certificates chaining to ``trust``,
    ``card_keys`` (by ``kid``) and, through ``jwks`` (None: never fetched),
    a JWK Set on ``base_url``'s origin; ``require_signature``: one of them
    must vouch for the card. Raises :class:`PeerUnavailable`.
    """
    base_url = base_url.rstrip("/")
    origins = Origins.of(base_url, endpoints)
    keys = _Keys(trust, card_keys or {}, jwks, require_signature)
    fetch = _Fetch(client, base_url, name or base_url, expected_identity, origins, clock, keys)
    if previous is not None and previous.etag is not None:
        return await fetch.revalidate(previous)
    return await fetch.first()


@dataclass(frozen=True)
class _Keys:
    """What vouches for a card's signatures (see :func:`fetch_card`)."""

    trust: Sequence[Path]
    configured: Mapping[str, PublicKey]
    jwks: JwksCache | None
    required: bool


@dataclass
class _Fetch:
    """One fetch of one peer's card."""

    client: httpx.AsyncClient
    base_url: str
    peer: str
    expected_identity: str | None
    origins: Origins
    clock: Clock
    keys: _Keys

    async def first(self) -> PeerCard:
        url = self.base_url + CARD_PATH
        status, headers, body, identity = await self._get(url, {})
        if status == 404:
            url = self.base_url + LEGACY_CARD_PATH
            status, headers, body, identity = await self._get(url, {})
        if status == 404:
            raise self._failure(url, f"no Agent Card at {CARD_PATH} or {LEGACY_CARD_PATH}")
        return await self._card(url, status, headers, body, identity)

    async def revalidate(self, previous: PeerCard) -> PeerCard:
        url = previous.card_url
        etag = {"If-None-Match": previous.etag or ""}
        status, headers, body, identity = await self._get(url, etag)
        if status != 304:
            return await self._card(url, status, headers, body, identity)
        now = self.clock()
        return dataclasses.replace(
            previous,
            identity=identity,
            etag=headers.get("etag") or previous.etag,
            fetched_at=now,
            expires_at=_expiry(headers, now),
        )

    async def _get(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[int, httpx.Headers, bytes, str | None]:
        """Status, headers, body (capped) and the server's identity, checked
        at the handshake by our client (:func:`~agent_node.a2a.peers.client.expecting`)
        and here again (a client made elsewhere does not check)."""
        headers = {"Accept": "application/json", **headers}
        expected = expecting(self.expected_identity)
        try:
            async with self.client.stream("GET", url, headers=headers, extensions=expected) as r:
                identity = self._check_identity(url, peer_identity(r), tls=_is_https(url))
                body = await self._read(url, r) if r.status_code == 200 else b""
                return r.status_code, r.headers, body, identity
        except IdentityMismatch as exc:
            raise self._impostor(url, exc.presented, tls=exc.tls) from None
        except httpx.HTTPError as exc:
            raise self._failure(url, f"cannot fetch the card: {_transport_reason(exc)}") from None

    def _check_identity(self, url: str, identity: str | None, *, tls: bool) -> str | None:
        if self.expected_identity is not None and identity != self.expected_identity:
            raise self._impostor(url, identity, tls=tls)
        return identity

    def _impostor(self, url: str, identity: str | None, *, tls: bool) -> PeerUnavailable:
        shown = shown_identity(identity, tls=tls)
        reason = f"the server presented {shown}, expected {self.expected_identity}"
        return self._failure(url, reason, permanent=True)

    async def _read(self, url: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared_over(declared, MAX_CARD_BYTES):
            raise self._failure(url, f"the card is over {MAX_CARD_BYTES} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_CARD_BYTES:
                raise self._failure(url, f"the card is over {MAX_CARD_BYTES} bytes")
        return bytes(body)

    async def _card(
        self, url: str, status: int, headers: httpx.Headers, body: bytes, identity: str | None
    ) -> PeerCard:
        if status != 200:
            hint = " (redirects are not followed)" if 300 <= status < 400 else ""
            raise self._failure(url, f"HTTP {status}{hint}")
        raw = self._json(url, body)
        card = self._validated(url, raw)
        choice = self._endpoint(url, card)
        signed_by = await self._signer(url, raw, identity)
        now = self.clock()
        return PeerCard(
            name=self.peer,
            base_url=self.base_url,
            card=card,
            endpoint=choice.endpoint,
            version=choice.version,
            identity=identity,
            etag=headers.get("etag"),
            fetched_at=now,
            expires_at=_expiry(headers, now),
            signed_by=signed_by,
            card_url=url,
            binding=choice.binding,
        )

    async def _signer(self, url: str, raw: dict[str, Any], identity: str | None) -> str | None:
        """Who signed the card (:attr:`PeerCard.signed_by`), its signatures checked."""
        lookup = await key_lookup(
            raw,
            peer=self.peer,
            base_url=self.base_url,
            configured=self.keys.configured,
            jwks=self.keys.jwks,
            identity=identity,
        )
        try:
            verified = verify_card(raw, self.keys.trust, lookup)
        except CardSignatureError as exc:
            raise self._failure(url, f"invalid card signature: {exc}") from None
        if self.keys.required and not verified.trusted:
            why = "; ".join(verified.skipped) or "it has no signature"
            reason = f"its card must be signed by a key we trust, and is not ({why})"
            raise self._failure(url, reason, permanent=True)
        return verified.signer

    def _json(self, url: str, body: bytes) -> dict[str, Any]:
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._failure(url, f"the card is not JSON: {exc}") from None
        except RecursionError:
            raise self._failure(url, "the card is nested too deeply") from None
        if not isinstance(raw, dict):
            raise self._failure(url, f"the card is a JSON {type(raw).__name__}, not an object")
        return raw

    def _validated(self, url: str, raw: dict[str, Any]) -> dict[str, Any]:
        """The card as 1.0 JSON: a 0.3 card (``url``, no ``supportedInterfaces``) converted."""
        is_v03 = "supportedInterfaces" not in raw and ("url" in raw or "protocolVersion" in raw)
        try:
            card = card_from_v03(raw) if is_v03 else raw
            AgentCard.model_validate(card)
        except ValidationError as exc:
            raise self._failure(url, f"not a valid Agent Card: {_first_error(exc)}") from None
        except (AttributeError, TypeError) as exc:  # a 0.3 card whose parts have wrong types
            raise self._failure(url, f"not a valid A2A 0.3 Agent Card: {exc}") from None
        return card

    def _endpoint(self, url: str, card: Mapping[str, Any]) -> Choice:
        """The interface to call (:func:`~agent_node.a2a.peers.endpoints.choose`)."""
        try:
            choice = choose(card["supportedInterfaces"], url, self.origins)
        except NoInterface as exc:
            if exc.refused is None:
                raise self._failure(
                    url,
                    "the card offers no JSON-RPC interface of A2A 1.0 or 0.3, nor HTTP+JSON"
                    " or gRPC of 1.0",
                ) from None
            log.warning("peer %r: refused its card's interface %s", self.peer, exc.refused)
            grpc = (
                " (a gRPC port written grpcs://host:port)" if exc.refused.startswith("grpc") else ""
            )
            raise self._failure(
                url,
                f"its card points to another origin ({in_words(origin_of(exc.refused))}) than"
                f" the peer's URL; list it under the peer's endpoints:{grpc} to allow it",
                permanent=True,
            ) from None
        for refused in choice.passed_over:
            log.warning(
                "peer %r: its card's interface %s is not on an allowed origin; calling %s",
                self.peer,
                refused,
                choice.endpoint,
            )
        return choice

    def _failure(self, url: str, reason: str, *, permanent: bool = False) -> PeerUnavailable:
        return PeerUnavailable(reason, peer=self.peer, url=url, permanent=permanent)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where.lstrip('.') or '(top)'}: {first['msg']}{more}"


def _is_https(url: str) -> bool:
    return url.lower().startswith("https:")


def _transport_reason(exc: httpx.HTTPError) -> str:
    # Under TLS 1.3 a server refusing our certificate just hangs up.
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection (did it refuse our certificate?): {exc}"
    return str(exc) or type(exc).__name__


def _expiry(headers: httpx.Headers, now: float) -> float:
    cache_control = headers.get("cache-control", "")
    if _NO_REUSE.search(cache_control):
        return now
    found = _MAX_AGE.search(cache_control)
    return now + (float(found.group(1)) if found else DEFAULT_MAX_AGE)
