"""An issuer's JWK Set as a bearer-token verifier holds it: fetched, kept, refreshed.

The set comes from a file or a URL (``oidc``: the URL of an OpenID Connect
discovery document naming its ``jwks_uri``). A fetched set is kept for
``ttl`` seconds; a key id the set lacks fetches it again at once (a key
rotated in), no more than once per ``min_refresh`` seconds.

What an issuer's server does cannot hold up the node's requests:

* A fetch reads at most :data:`MAX_DOCUMENT_BYTES` of each document, and
  ends within ``deadline`` seconds in all (a server that drips a byte just
  inside each read timeout is cut there).
* While a set is held, a request never waits for a refresh: a set past its
  ``ttl`` is refreshed in the background and served meanwhile, and a failed
  refresh keeps it. Only a token whose key the set lacks waits for the
  fetch that may bring it (it would be refused otherwise).
* While none is held (the issuer was never reached), a fetch starts at most
  once per ``min_refresh`` seconds, whatever tokens come: the others are
  refused at once, saying why the last fetch failed. Concurrent requests
  share one fetch.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

__all__ = ["MAX_DOCUMENT_BYTES", "KeySet"]

log = logging.getLogger(__name__)

#: The largest discovery document or JWK Set read (a set of a few keys is ~1 KiB).
MAX_DOCUMENT_BYTES = 256 * 1024


class KeySet:
    """One issuer's signing keys, by ``kid`` (see the module doc)."""

    def __init__(
        self,
        *,
        file: Path | None = None,
        url: str | None = None,
        oidc: bool = False,
        ttl: float = 300.0,
        min_refresh: float = 5.0,
        deadline: float = 10.0,
        http: Callable[[], httpx.AsyncClient],
        clock: Callable[[], float],
    ) -> None:
        self.file, self.url, self.oidc = file, url, oidc
        self.ttl, self.min_refresh, self.deadline = ttl, min_refresh, deadline
        self._http = http
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._tried_at = float("-inf")
        self._failure = ""
        self._fetch: asyncio.Task[None] | None = None
        #: Called when the set changes (tokens verified with the old one are forgotten).
        self.changed: Callable[[], None] = lambda: None

    async def find(self, kid: str | None) -> jwt.PyJWK | None:
        """The key of ``kid`` (None: the set's only key), fetching the set as
        the module doc says; None when the set held has no such key. Raises
        :class:`ValueError` saying why when no set could be had."""
        now = self._clock()
        fetch = self._fetch if self._fetch is not None and not self._fetch.done() else None
        if fetch is None and now - self._tried_at >= self.min_refresh:
            if now - self._fetched_at > self.ttl or self._find(kid) is None:
                fetch = self._start()
        key = self._find(kid)
        if key is None and fetch is not None:
            await asyncio.shield(fetch)  # the fetch goes on if this request goes
            key = self._find(kid)
        if key is None and not self._keys:
            raise ValueError(self._failure or "no JWK Set fetched yet")
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            only = list(self._keys.values())
            return only[0] if len(only) == 1 else None
        return self._keys.get(kid)

    def _start(self) -> asyncio.Task[None]:
        self._tried_at = self._clock()
        self._fetch = asyncio.create_task(self._refresh(), name="JWK Set fetch")
        return self._fetch

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                document = await self._document()
            keys = _keys_of(document)
        except TimeoutError:
            self._failed(f"no answer within {self.deadline:g} s")
            return
        except (OSError, httpx.HTTPError, ValueError, RecursionError) as exc:
            self._failed(str(exc) or type(exc).__name__)
            return
        if keys != self._keys:
            self._keys = keys
            self.changed()
        self._fetched_at = self._clock()
        self._failure = ""

    def _failed(self, why: str) -> None:
        self._failure = why
        where = self.url or self.file
        kept = "; the keys held are kept" if self._keys else ""
        log.warning("the issuer's keys could not be fetched from %s: %s%s", where, why, kept)

    async def _document(self) -> Any:
        if self.file is not None:
            return json.loads(self.file.read_text())
        if self.url is None:
            raise ValueError("no JWK Set file or URL")
        async with self._http() as http:
            url = self.url
            if self.oidc:
                document = await _get_json(http, url)
                found = document.get("jwks_uri") if isinstance(document, dict) else None
                url = str(found or "")
                if not url.startswith(("https://", "http://")):
                    raise ValueError("the OpenID Connect document names no jwks_uri")
            return await _get_json(http, url)


async def _get_json(http: httpx.AsyncClient, url: str) -> Any:
    """The JSON document at ``url``, read up to :data:`MAX_DOCUMENT_BYTES`."""
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url[:200]} answers over {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def _keys_of(document: Any) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWK Set (those of unknown types are skipped)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWK Set")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
        keys[entry.get("kid") if isinstance(entry.get("kid"), str) else None] = key
    return keys
