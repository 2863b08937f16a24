"""Keys that vouch for peers' card signatures besides the trust bundle's
certificates (``x5c``, :mod:`agent_node.a2a.peers.signing`).

* **Configured** (``peers[].card_keys``): JWK Set files; a signature whose
  ``kid`` names one of their keys is checked with it, whatever else its
  header says. The operator vouches for them.
* **Fetched** (``jku``): a signature naming no configured key and carrying
  no certificate chain is checked with the JWK Set its ``jku`` names — only
  when that URL is on the peer's own origin (the scheme, host and port of
  its configured ``url``, loopback names and addresses being one host as in
  :mod:`agent_node.a2a.peers.endpoints`; never its ``endpoints``, never
  elsewhere), fetched
  through the node's client, from the identity that served the card. At
  most :data:`MAX_JWKS_BYTES`, :data:`JWKS_TIMEOUT` seconds, no redirects;
  kept :data:`JWKS_MAX_AGE` seconds, fetched again sooner for a ``kid`` it
  lacks (a rotated key) but not more than once per :data:`JWKS_RETRY`
  seconds. The identity that served it vouches for its keys.

A ``jku`` elsewhere, or one that cannot be fetched or read, leaves the
signature without a key: it is skipped and logged, as if the card were
unsigned — unless the peer's configuration requires a signed card.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agent_node.a2a.peers.client import expecting, server_identity
from agent_node.a2a.peers.endpoints import in_words, origin_of, same_origin
from agent_node.a2a.peers.signing import KeyLookup
from agent_node.a2a.protocol.jws import (
    CardSignatureError,
    PublicKey,
    key_from_jwk,
    protected_header,
)
from agent_node.errors import ConfigError

__all__ = [
    "JWKS_MAX_AGE",
    "JWKS_RETRY",
    "JWKS_TIMEOUT",
    "MAX_JWKS_BYTES",
    "JwksCache",
    "key_lookup",
    "read_key_files",
]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 64 * 1024
JWKS_TIMEOUT = 10.0
JWKS_MAX_AGE = 300.0
JWKS_RETRY = 30.0

Clock = Callable[[], float]


def read_key_files(paths: Sequence[Path]) -> dict[str, PublicKey]:
    """The keys of the JWK Set files ``paths``, by ``kid``; a
    :class:`~agent_node.errors.ConfigError` for a file that is not one."""
    keys: dict[str, PublicKey] = {}
    for path in paths:
        try:
            keys.update(keys_of(json.loads(path.read_bytes()), str(path)))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        except (ValueError, CardSignatureError) as exc:  # JSONDecodeError is a ValueError
            raise ConfigError(f"{path}: not a JWK Set of card keys: {exc}") from None
    return keys


def keys_of(jwks: Any, where: str) -> dict[str, PublicKey]:
    """The keys of a JWK Set (RFC 7517 §5), by ``kid``. Keys without a ``kid``,
    of another use than signing, or of a type we do not verify with are left out."""
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list):
        raise CardSignatureError(f"{where}: a JWK Set is an object with a list 'keys'")
    keys: dict[str, PublicKey] = {}
    for index, entry in enumerate(entries):
        kid = entry.get("kid") if isinstance(entry, Mapping) else None
        if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = key_from_jwk(entry, f"{where}: key {index + 1}")
        except CardSignatureError as exc:
            log.info("%s; left out", exc)
    return keys


@dataclass(frozen=True)
class _Fetched:
    keys: dict[str, PublicKey]
    #: Who served it: the identity of its server's certificate (None over plain HTTP).
    identity: str | None
    at: float


class JwksCache:
    """JWK Sets fetched from peers' ``jku`` URLs, kept a while; one per node."""

    def __init__(self, client: httpx.AsyncClient, *, clock: Clock = time.time) -> None:
        self._client = client
        self._clock = clock
        self._sets: dict[str, _Fetched] = {}
        self._failed: dict[str, float] = {}

    async def get(self, url: str, kid: str, identity: str | None) -> _Fetched | None:
        """The JWK Set at ``url`` served by ``identity`` (None: any), cached;
        None when it cannot be had (logged)."""
        now = self._clock()
        cached = self._sets.get(url)
        if cached is not None and now - cached.at < JWKS_MAX_AGE:
            if kid in cached.keys or now - cached.at < JWKS_RETRY:
                return cached
        if now - self._failed.get(url, -JWKS_RETRY) < JWKS_RETRY:
            return cached
        try:
            fetched = await self._fetch(url, identity, now)
        except (httpx.HTTPError, CardSignatureError, ValueError, RecursionError) as exc:
            log.warning("cannot use the JWK Set at %s: %s", url, exc)
            self._failed[url] = now
            return cached
        self._sets[url] = fetched
        return fetched

    async def _fetch(self, url: str, identity: str | None, now: float) -> _Fetched:
        headers = {"Accept": "application/jwk-set+json, application/json"}
        extensions = expecting(identity)
        timeout = httpx.Timeout(JWKS_TIMEOUT)
        request = self._client.stream(
            "GET", url, headers=headers, extensions=extensions, timeout=timeout
        )
        async with request as response:
            served_by = server_identity(response)
            if response.status_code != 200:
                raise CardSignatureError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise CardSignatureError(f"over {MAX_JWKS_BYTES} bytes")
        return _Fetched(keys_of(json.loads(body), url), served_by, now)


async def key_lookup(
    card: Mapping[str, Any],
    *,
    peer: str,
    base_url: str,
    configured: Mapping[str, PublicKey],
    jwks: JwksCache | None,
    identity: str | None,
) -> KeyLookup:
    """The keys ``card``'s signatures may be checked with (see the module doc),
    the JWK Sets they name fetched first; for :func:`~agent_node.a2a.peers.signing.verify_card`."""
    fetched: dict[str, _Fetched] = {}
    origin = origin_of(base_url)
    for header in _headers(card):
        kid, jku = header.get("kid"), header.get("jku")
        if kid in configured or "x5c" in header or not isinstance(jku, str) or jwks is None:
            continue
        if not isinstance(kid, str):
            continue
        if not same_origin(origin_of(jku), origin):
            log.warning(
                "peer %r: its card's signature names keys at %s, not on the peer's own origin"
                " (%s); not fetched",
                peer,
                in_words(origin_of(jku)),
                in_words(origin),
            )
            continue
        found = await jwks.get(jku, kid, identity)
        if found is not None:
            fetched[jku] = found

    def lookup(header: Mapping[str, Any]) -> tuple[PublicKey, str] | None:
        kid, jku = header.get("kid"), header.get("jku")
        if not isinstance(kid, str):
            return None
        if kid in configured:
            return configured[kid], f"{peer}'s card_keys ({kid})"
        keys = fetched.get(jku) if isinstance(jku, str) else None
        if keys is None or kid not in keys.keys:
            return None
        return keys.keys[kid], keys.identity or f"the JWK Set of {in_words(origin)}"

    return lookup


def _headers(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The protected headers of the card's signatures that can be read (the
    others fail in :func:`~agent_node.a2a.peers.signing.verify_card`)."""
    signatures = card.get("signatures")
    found = []
    for entry in signatures if isinstance(signatures, list) else []:
        protected = entry.get("protected") if isinstance(entry, Mapping) else None
        if isinstance(protected, str):
            try:
                found.append(protected_header(protected, "a signature"))
            except CardSignatureError:
                continue
    return found
