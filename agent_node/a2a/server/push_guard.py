"""Where pushes may go: the SSRF guard of push notifications.

Push URLs must be ``http(s)`` without user info. Their host must be a
public address: loopback, private, link-local, multicast and reserved
addresses are refused — checked on the URL when a config is set, and on
every resolved address before each POST (a name can point anywhere) —
unless the host name or the address's network is in ``push.allow``. The
POST then connects to the address that was checked (with the original
``Host`` and TLS server name), so DNS cannot answer differently in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agent_node.a2a.protocol.errors import InvalidParams

__all__ = ["AllowList", "PushRefused", "check_push_url", "checked_addresses", "pinned"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048


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


async def checked_addresses(host: str, port: int, allow: AllowList) -> list[str | None]:
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


def pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
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
