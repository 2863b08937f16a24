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

SSRF. Push URLs must be ``http(s)`` without user info. Their host must be a
public address: loopback, private, link-local, multicast and reserved
addresses are refused — checked on the URL when a config is set, and on
every resolved address before each POST (a name can point anywhere) —
unless the host name or the address's network is in ``push.allow``. The
POST then connects to the address that was checked (with the original
``Host`` and TLS server name), so DNS cannot answer differently in between.

Over mutual TLS the sender presents the node's certificate and verifies
HTTPS receivers against the node's trust bundle (:mod:`.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent_node.a2a.peers.client import http_client
from agent_node.a2a.protocol.errors import InvalidParams
from agent_node.config import PushSettings
from agent_node.store.base import Store
from agent_node.store.records import TERMINAL, PushClaim

__all__ = ["AllowList", "PushRefused", "PushSender", "check_push_url"]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Renders a task for a push: ``(task_id, protocol version) -> JSON body``.
Render = Callable[[str, str], Awaitable[Any]]

MAX_URL_LENGTH = 2048
_RETRYABLE = frozenset({408, 425, 429})
_MAX_BACKOFF = 300.0


class PushRefused(Exception):
    """A push URL the SSRF guard refuses."""


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks push URLs may reach although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def of(cls, entries: list[str]) -> AllowList:
        hosts: set[str] = set()
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def permits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def permits(self, address: IPAddress) -> bool:
        """Whether a push may go to ``address``: public, or allowed here."""
        address = _unmapped(address)
        if address.is_global and not address.is_multicast:
            return True
        return any(address in network for network in self.networks)


def check_push_url(url: str, allow: AllowList) -> None:
    """Refuse (:class:`~agent_node.a2a.protocol.errors.InvalidParams`) a push URL that is
    malformed or names a non-public host. Host names are checked again, once
    resolved, before each POST."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidParams(f"push url: longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidParams("push url: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParams(f"push url: scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidParams("push url: has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidParams("push url: user info is not allowed (use authentication)")
    host = parts.hostname
    if allow.permits_host(host):
        return
    address = _literal(host)
    if address is None and (host == "localhost" or host.endswith(".localhost")):
        address = ipaddress.ip_address("127.0.0.1")
    if address is not None and not allow.permits(address):
        raise InvalidParams(
            f"push url: {host} is not a public address; a node refuses it unless the"
            " operator allows it (push.allow in agent-node.yaml)"
        )


async def _checked_addresses(host: str, port: int, allow: AllowList) -> list[str | None]:
    """Resolve ``host``; refuse it when any of its addresses is not allowed.
    Returns the addresses to try, in order, or ``[None]`` for an allow-listed
    name (the operator vouches for it wherever it points)."""
    if allow.permits_host(host):
        return [None]
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectionError(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refused = sorted({str(a) for a in addresses if not allow.permits(a)})
    if refused:
        raise PushRefused(f"{host} resolves to {', '.join(refused)}, which is not public")
    return list(dict.fromkeys(str(a) for a in addresses))


def _pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to POST to, connecting to the checked ``address`` (so a name that
    resolves differently a moment later cannot redirect the push), with the
    Host header and the TLS server name of the original host."""
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), headers, extensions


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push sender: cannot read the outbox; trying again")
                await asyncio.sleep(self.poll)

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
                    "push to %s for task %s: gave up after %d %s: %s",
                    _target(config.config),
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
            addresses = await _checked_addresses(parts.hostname or "", port, self.allow)
            body = await self.render(config.task_id, config.version)
        except PushRefused as exc:
            return f"refused: {exc}", False
        except Exception as exc:  # cannot resolve, or cannot render now: try again later
            return _describe(exc), True
        headers = {"Content-Type": "application/json"}
        if target.get("token"):
            headers["X-A2A-Notification-Token"] = str(target["token"])
        auth = target.get("authentication") or {}
        if auth.get("scheme") and auth.get("credentials"):
            headers["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        response = None
        error = "no address"
        for address in addresses:  # each checked address, until one connects
            post_url, host, extensions = _pinned(url, address)
            try:
                response = await self._client.post(
                    post_url, content=content, headers={**headers, **host}, extensions=extensions
                )
            except httpx.ConnectError as exc:  # refused or unreachable: the next address
                error = _describe(exc)
                continue
            except Exception as exc:  # timeouts, protocol and OS errors: try again later
                return _describe(exc), True
            break
        if response is None:
            return error, True
        if 200 <= response.status_code < 300:
            return None, False
        status = response.status_code
        return f"HTTP {status}", status >= 500 or status in _RETRYABLE


def _describe(exc: BaseException) -> str:
    """An error as ``last_error`` keeps it: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _target(config: str) -> str:
    """The URL of a stored config, without its query (it may hold secrets)."""
    url = str(json.loads(config).get("url", ""))
    return url.split("?", 1)[0]
