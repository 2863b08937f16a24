"""Push notifications to callers: the SSRF guard and the durable sender.

A caller that sets a push config (``CreateTaskPushNotificationConfig``, or
``taskPushNotificationConfig`` in a send) gets a POST each time its task
stops: when it parks (INPUT_REQUIRED, or WORKING on a timer) and when it
ends. The body is the task as a ``StreamResponse`` (``{"task": …}``; a 0.3
caller gets the 0.3 task object), with ``Authorization: <scheme>
<credentials>`` from the config's ``authentication`` and the config's
``token`` in ``X-A2A-Notification-Token``.

Durability. Each config row is its own outbox (:class:`PushConfigRecord`):
a cursor over the task's event log. The store hands out configs whose task
has stopped past the cursor (:meth:`Store.claim_pushes`, leased, so two
senders never push the same change at once); a 2xx answer moves the cursor.
Nothing is written on the engine's hot path, a task without push configs
costs nothing, and after a crash the changes not yet acknowledged are simply
still past their cursors: at-least-once. Changes that pile up while a
receiver is down are coalesced into one push of the task as it is now.

Retries: a network error, a timeout, 408, 429 or 5xx is retried with
exponential backoff (1 s, 2 s, 4 s, … capped at 5 min, with jitter) up to
``push.attempts`` tries; any other answer, or running out of tries, gives up
on that change (logged, kept in ``last_error``) and the next change is
tried anew. Redirects are not followed.

SSRF: see :mod:`.push_guard` (``push.allow``). Header values: a push
whose token or credentials cannot be sent in a header is given up on at
once, and no error kept or logged quotes them (:mod:`.push_headers`).

Over mutual TLS the sender presents the node's certificate and verifies
HTTPS receivers against the node's trust bundle (:mod:`.client`).

Credentials of our own: ``push.credentials`` gives pushes to some URLs
(by prefix, the longest winning) a bearer token, an API key or OAuth 2.0
client credentials, as ``peers[].auth`` gives them to peers
(:mod:`agent_node.a2a.peers.credentials`: secrets read when used, tokens
cached and renewed, never stored or logged). They go with the config's own
``authentication`` (whose ``Authorization`` wins: it is the caller's word
for its receiver); a receiver that answers 401 to an OAuth 2.0 token gets
the push again once with a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent_node.a2a.peers.client import http_client
from agent_node.a2a.peers.credentials import PeerCredentials
from agent_node.a2a.peers.peer_errors import PeerError
from agent_node.a2a.server.push_guard import (
    AllowList,
    PushRefused,
    check_push_url,
    checked_addresses,
    pinned,
)
from agent_node.a2a.server.push_headers import is_field_value, scrubbed
from agent_node.config import PushSettings
from agent_node.failures import Failures
from agent_node.settings_auth import PushAuth
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, PushClaim

__all__ = ["AllowList", "PushCredentials", "PushRefused", "PushSender", "check_push_url"]

log = logging.getLogger(__name__)

#: Renders a task for a push: ``(task_id, protocol version) -> JSON body``.
Render = Callable[[str, str], Awaitable[Any]]

_RETRYABLE = frozenset({408, 425, 429})
_MAX_BACKOFF = 300.0


class PushCredentials:
    """What pushes present by URL (``push.credentials``): the credentials of
    the longest prefix that covers a push's URL, if any."""

    def __init__(self, rules: list[PushAuth], http: Callable[[], httpx.AsyncClient]) -> None:
        self._rules = sorted(
            (
                (rule, PeerCredentials(rule.url, rule.auth, http, label=f"pushes to {rule.url}"))
                for rule in rules
            ),
            key=lambda pair: -len(pair[0].url),
        )

    def for_url(self, url: str) -> PeerCredentials | None:
        return next((ours for rule, ours in self._rules if rule.covers(url)), None)


class PushSender:
    """Delivers the pushes of every push config in ``store`` (see the module doc).

    Woken by the store's ``status`` notices for tasks it knows have configs
    (:meth:`watch`), and every ``poll`` seconds for the rest (configs set
    through another node sharing the store, retries coming due).
    """

    def __init__(
        self,
        store: Store,
        render: Render,
        settings: PushSettings,
        *,
        owner: str,
        poll: float = 2.0,
        concurrency: int = 16,
        client: Any = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.render = render
        self.settings = settings
        self.allow = AllowList.of(settings.allow)
        self.owner = owner
        self.poll = poll
        self.concurrency = concurrency
        self._client = client
        self._own_client = client is None
        #: What pushes are sent with (mutual TLS: the node's certificate).
        self.tls = tls
        self._watched: set[str] = set()
        self._wake = asyncio.Event()
        self._retry_at: float | None = None
        self._loop: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: A push lease outlives one POST; after a crash its change waits this long.
        self._lease = settings.timeout + 15
        self.credentials = PushCredentials(
            settings.credentials, lambda: http_client(self.tls, timeout=settings.timeout)
        )

    async def start(self) -> None:
        if self._loop is not None:
            return
        if self._client is None:
            self._client = http_client(self.tls, timeout=self.settings.timeout)
        self._unsubscribe = self.store.subscribe(self._on_notice)
        self._loop = asyncio.create_task(self._run(), name="push-sender")

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def watch(self, task_id: str) -> None:
        """A config was set for ``task_id``: push as soon as the task stops."""
        self._watched.add(task_id)
        self._wake.set()

    def _on_notice(self, kind: str, execution_id: str) -> None:
        if kind == "status" and execution_id in self._watched:
            self._wake.set()

    async def _run(self) -> None:
        failures = Failures(log, "push sender", first=self.poll)
        while True:
            timeout = self.poll
            if self._retry_at is not None:
                timeout = max(0.0, min(timeout, self._retry_at - time.time()))
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation
            # that races with the event, and close() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.deliver_due()
                failures.worked()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await asyncio.sleep(failures.failed(exc))

    async def deliver_due(self) -> int:
        """Claim and deliver what is due now; returns how many pushes were tried."""
        tried = 0
        self._retry_at = None
        while True:
            now = time.time()
            claims = await self.store.claim_pushes(
                self.owner, now=now, lease_until=now + self._lease, limit=self.concurrency
            )
            if not claims:
                return tried
            await asyncio.gather(*(self._deliver(claim) for claim in claims))
            tried += len(claims)

    async def _deliver(self, claim: PushClaim) -> None:
        config = claim.config
        self._watched.add(config.task_id)
        error, retry = await self._post(claim)
        now = time.time()
        if error is None or not retry or config.attempts + 1 >= self.settings.attempts:
            if error is not None:
                tries = config.attempts + 1
                log.warning(
                    "push to %s (config %r) for task %s: gave up after %d %s: %s",
                    _target(config.config),
                    config.id,
                    config.task_id,
                    tries,
                    "try" if tries == 1 else "tries",
                    error,
                )
            config.pushed_seq = claim.last_seq
            config.settled = claim.status in TERMINAL
            config.attempts, config.next_attempt_at = 0, now
            config.last_error = None if error is None else f"gave up: {error}"
        else:
            if config.attempts == 0:  # the first of a run of failures; the last says "gave up"
                log.warning(
                    "push to %s (config %r) for task %s failed: %s; trying again (%d tries in all)",
                    _target(config.config),
                    config.id,
                    config.task_id,
                    error,
                    self.settings.attempts,
                )
            config.attempts += 1
            delay = min(2.0 ** (config.attempts - 1), _MAX_BACKOFF) * random.uniform(0.8, 1.2)
            config.next_attempt_at = now + delay
            config.last_error = error
            self._retry_at = min(self._retry_at or config.next_attempt_at, config.next_attempt_at)
        released = await self.store.release_push(self.owner, config)
        if released and config.settled:
            self._watched.discard(config.task_id)

    async def _post(self, claim: PushClaim) -> tuple[str | None, bool]:
        """POST the task; returns ``(error, worth retrying)``, error None on success."""
        config = claim.config
        target = json.loads(config.config)
        url = str(target.get("url", ""))
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            addresses = await checked_addresses(parts.hostname or "", port, self.allow)
            body = await self.render(config.task_id, config.version)
        except PushRefused as exc:
            return f"refused: {exc}", False
        except Exception as exc:  # cannot resolve, or cannot render now: try again later
            return _describe(exc), True
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ours = self.credentials.for_url(url)
        for renewed in (False, True):
            try:
                headers = await self._headers(target, ours)
            except PeerError as exc:  # says what is wrong, never the secret
                return f"credentials: {exc}", exc.transient
            unsendable = [name for name, value in headers.items() if not is_field_value(value)]
            if unsendable:  # a config stored before it was checked: no try can send it
                return f"refused: {', '.join(unsendable)}: not an HTTP header value", False
            error, retry, status = await self._send(url, addresses, content, headers)
            # A token the receiver refused: once more with a new one (OAuth 2.0).
            if status != 401 or renewed or ours is None or not ours.renew():
                return error, retry
        raise AssertionError("unreachable")

    async def _headers(
        self, target: dict[str, Any], ours: PeerCredentials | None
    ) -> dict[str, str]:
        """A push's headers: ``push.credentials``' for its URL, then the
        config's own ``authentication`` (the caller's word wins) and token."""
        headers = {"Content-Type": "application/json"}
        if ours is not None:
            headers.update((await ours.present()).headers)
        if target.get("token"):
            headers["X-A2A-Notification-Token"] = str(target["token"])
        auth = target.get("authentication") or {}
        if auth.get("scheme") and auth.get("credentials"):
            headers["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
        return headers

    async def _send(
        self, url: str, addresses: list[str | None], content: bytes, headers: dict[str, str]
    ) -> tuple[str | None, bool, int | None]:
        """POST to each checked address until one connects: (error, worth
        retrying, HTTP status), error None on success."""
        response = None
        error = "no address"
        # Credentials, which an error may quote (a header httpx refused to send).
        secrets = [v for k, v in headers.items() if k != "Content-Type"]
        secrets += [v.split(" ", 1)[1] for v in secrets if " " in v]
        for address in addresses:
            post_url, host, extensions = pinned(url, address)
            try:
                response = await self._client.post(
                    post_url, content=content, headers={**headers, **host}, extensions=extensions
                )
            except httpx.ConnectError as exc:  # refused or unreachable: the next address
                error = _describe(exc, secrets)
                continue
            except Exception as exc:  # timeouts, protocol and OS errors: try again later
                return _describe(exc, secrets), True, None
            break
        if response is None:
            return error, True, None
        status = response.status_code
        if 200 <= status < 300:
            return None, False, status
        return f"HTTP {status}", status >= 500 or status in _RETRYABLE, status


def _describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """An error as ``last_error`` keeps it: its type, and its message when it
    has one, without ``secrets``."""
    said = str(exc)
    return f"{type(exc).__name__}: {scrubbed(said, secrets)}" if said else type(exc).__name__


def _target(config: str) -> str:
    """Where a stored config pushes to, as the log says it: the URL's origin.
    The rest is the caller's and may hold its secrets: a key in the query,
    or the path itself (a Slack or Discord webhook's token is its path)."""
    parts = urlsplit(str(json.loads(config).get("url", "")))
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port out of range: checked when the config was set
        port = ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{port}"
