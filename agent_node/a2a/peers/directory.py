"""The configured peers' cards, one :class:`Directory` per node.

A card (read by :func:`~agent_node.a2a.peers.discovery.fetch_card`) is reused
while fresh (``Cache-Control: max-age``, default
:data:`~agent_node.a2a.peers.discovery.DEFAULT_MAX_AGE`; ``no-store``/``no-cache``:
never), then revalidated with ``If-None-Match``; concurrent asks for one peer
share one request. A card that cannot be fetched or revalidated is dropped,
never served stale: the next ask tries again (and :meth:`Directory.forget`
drops one after a failed call, so a peer that moved or changed is re-read).
Each peer's ``card_keys`` files are read once, when the directory is made
(a :class:`ConfigError` if one cannot be); the JWK Sets peers' signatures
name (``jku``) are fetched and kept by one :class:`JwksCache`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from agent_node.a2a.peers.card_keys import JwksCache, read_key_files
from agent_node.a2a.peers.credentials import PeerCredentials
from agent_node.a2a.peers.discovery import Clock, PeerCard, PeerUnavailable, fetch_card
from agent_node.config import PeerConfig
from agent_node.errors import ConfigError

__all__ = ["CARD_TIMEOUT", "Directory"]

log = logging.getLogger(__name__)


#: Seconds a card fetch (its JWKS included) may take: one that hangs is a
#: peer that is down, for every delegation waiting on it (before: the client's
#: 30 s, shared by all of them).
CARD_TIMEOUT = 10.0


class Directory:
    """The configured peers' cards, cached (ETag + max-age); one per node.

    Safe for concurrent use from one event loop: asks for one peer while its
    card is being fetched wait for that fetch instead of starting another.
    """

    def __init__(
        self,
        peers: Sequence[PeerConfig],
        client: httpx.AsyncClient,
        *,
        trust: Sequence[Path] = (),
        clock: Clock = time.time,
        card_timeout: float = CARD_TIMEOUT,
    ) -> None:
        #: Seconds a card fetch may take (:data:`CARD_TIMEOUT`).
        self.card_timeout = card_timeout
        self._peers = {peer.name: peer for peer in peers}
        self._client = client
        self._trust = tuple(trust)
        self._clock = clock
        self._cards: dict[str, PeerCard] = {}
        self._fetching: dict[str, asyncio.Task[PeerCard]] = {}
        self._keys = {
            peer.name: read_key_files([Path(f) for f in peer.card_keys]) for peer in peers
        }
        self._jwks = JwksCache(client, clock=clock)
        tokens = _token_client(trust)
        self._credentials = {
            peer.name: PeerCredentials(peer.name, peer.auth, tokens, clock)
            for peer in peers
            if peer.auth is not None
        }

    def names(self) -> list[str]:
        """The configured peers' names."""
        return list(self._peers)

    def credentials(self, name: str) -> PeerCredentials | None:
        """What peer ``name`` wants besides our certificate (``auth:``), if anything."""
        return self._credentials.get(name)

    async def card(self, name: str) -> PeerCard:
        """Peer ``name``'s card: cached while fresh, else (re)fetched.

        Raises :class:`PeerUnavailable`, or :class:`ConfigError` when no peer
        has that name.
        """
        peer = self._peer(name)
        cached = self._cards.get(name)
        if cached is not None and self._clock() < cached.expires_at:
            return cached
        task = self._fetching.get(name)
        if task is None:
            task = asyncio.create_task(self._refresh(peer, cached), name=f"card of {name}")
            self._fetching[name] = task
            task.add_done_callback(lambda done: self._fetched(name, done))
        # Shielded: one waiter giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def find(self, *, skill: str | None = None, tag: str | None = None) -> PeerCard:
        """The first configured peer whose card has a skill with id ``skill``
        and tag ``tag`` (each when given). Peers that cannot be reached are
        skipped (logged); none left raises :class:`PeerUnavailable`."""
        wanted = " and ".join(
            f"{label} {value!r}" for label, value in (("skill", skill), ("tag", tag)) if value
        )
        if not wanted:
            raise ConfigError("finding a peer takes a skill id or a tag")
        unreachable: list[str] = []
        for result in await self.all():
            if isinstance(result, PeerUnavailable):
                log.warning("finding a peer with %s: skipped %s", wanted, result)
                unreachable.append(f"{result.peer} ({result.reason})")
            elif result.has(skill=skill, tag=tag):
                return result
        reason = f"no configured peer offers {wanted}"
        if unreachable:
            reason += f"; unreachable: {'; '.join(unreachable)}"
        raise PeerUnavailable(reason)

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a configured peer."""
        return name in self._peers

    def cached(self, name: str) -> PeerCard | None:
        """Peer ``name``'s card as last fetched, fresh or not (no I/O)."""
        return self._cards.get(name)

    def identity_of(self, name: str) -> str | None:
        """The identity peer ``name`` is known by: configured, or the one that
        served its card (None: not known yet)."""
        peer = self._peers.get(name)
        if peer is not None and peer.identity is not None:
            return peer.identity
        cached = self._cards.get(name)
        return cached.identity if cached is not None else None

    def forget(self, name: str) -> None:
        """Drop peer ``name``'s cached card (after a failed call): the next use refetches.

        A name no longer configured is no error (a delegation sent before a
        configuration change may still fail afterwards)."""
        self._cards.pop(name, None)

    async def all(self) -> list[PeerCard | PeerUnavailable]:
        """Every configured peer's card, or why it is unavailable, in configuration order."""
        return await asyncio.gather(*(self._card_or_failure(name) for name in self._peers))

    async def _card_or_failure(self, name: str) -> PeerCard | PeerUnavailable:
        try:
            return await self.card(name)
        except PeerUnavailable as exc:
            return exc

    async def _refresh(self, peer: PeerConfig, cached: PeerCard | None) -> PeerCard:
        try:
            async with asyncio.timeout(self.card_timeout):
                card = await self._fetch(peer, cached)
        except TimeoutError:
            self._cards.pop(peer.name, None)
            raise PeerUnavailable(
                f"cannot fetch the card: no answer within {self.card_timeout:g} s",
                peer=peer.name,
                url=peer.url,
            ) from None
        except PeerUnavailable:
            self._cards.pop(peer.name, None)
            raise
        self._cards[peer.name] = card
        return card

    async def _fetch(self, peer: PeerConfig, cached: PeerCard | None) -> PeerCard:
        return await fetch_card(
            self._client,
            peer.url,
            name=peer.name,
            expected_identity=peer.identity,
            endpoints=peer.endpoints,
            previous=cached,
            trust=self._trust,
            card_keys=self._keys[peer.name],
            jwks=self._jwks,
            require_signature=peer.require_signed_card,
            clock=self._clock,
        )

    def _fetched(self, name: str, task: asyncio.Task[PeerCard]) -> None:
        if self._fetching.get(name) is task:
            del self._fetching[name]
        if not task.cancelled():
            task.exception()  # its waiters had it; do not report it as never retrieved

    def _peer(self, name: str) -> PeerConfig:
        peer = self._peers.get(name)
        if peer is None:
            known = ", ".join(self._peers) or "none (add them under peers: in agent-node.yaml)"
            raise ConfigError(f"no peer named {name!r}; configured peers: {known}")
        return peer


def _token_client(trust: Sequence[Path]) -> Callable[[], httpx.AsyncClient]:
    """What OAuth 2.0 tokens are fetched with: the system's CAs and the
    node's trust bundle (a token endpoint is usually a public service)."""

    def make() -> httpx.AsyncClient:
        context = ssl.create_default_context()
        for file in trust:
            context.load_verify_locations(cafile=file)
        return httpx.AsyncClient(
            verify=context, timeout=10, trust_env=False, follow_redirects=False
        )

    return make
