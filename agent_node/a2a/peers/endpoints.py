"""Which of a peer's card interfaces we call: ours to choose, not the card's.

A card names the URL of each interface, and we would send our messages,
push tokens and callers' data there. A card can be wrong or hostile (a
compromised peer, a proxy that rewrites it, a stale ``public_url``), so
the peer's configured URL is authoritative: an interface is called only on
that URL's origin (scheme, host and port) or an origin the peer's
configuration lists under ``endpoints``. Another host, another port, or
plain ``http`` from an ``https`` peer is refused.

Loopback is one host: ``localhost`` and the loopback addresses
(127.0.0.0/8, ``::1``) name this machine whichever is written, so a peer
configured (or discovered) as ``https://localhost:8470`` may be called at
the ``https://127.0.0.1:8470`` its card names, with the same scheme and
port. Only when both sides are loopback: a card on a loopback peer that
names a routable host, or one on a routable peer that names loopback, is
still another origin (:func:`same_origin`).

Among a card's interfaces, JSON-RPC is preferred (A2A 1.0, then 0.3), then
HTTP+JSON of A2A 1.0 (§11), then gRPC of 1.0 (§10); within one of these the
card's order. When the
card's first interface of a kind is on an origin not allowed, another of
that kind on an allowed origin is taken (the configured origin first); when
the card offers none, the next kind on an allowed origin; when it offers
nothing allowed at all, :class:`NoInterface` says which origin was refused.

A gRPC interface names a target, not a URL: ``host:port`` (what gRPC
channels take, and what a2a-sdk and our own cards write), or
``grpcs://host:port`` / ``grpc://host:port`` (with and without TLS). We call
it as ``grpcs://host:port`` — TLS when the card was read over HTTPS — or
``grpc://host:port`` when the card came over plain HTTP; its origin is the
``https``/``http`` one of that host and port. gRPC is served on a port of its
own, so a gRPC-only peer's interface is another origin than its card's: its
``endpoints`` must list it (``grpcs://host:port``).

What a delegation speaks is kept on its row as one string, its *dialect*:
the version alone for JSON-RPC (``1.0``, ``0.3``, as rows always said), else
binding and version (``HTTP+JSON 1.0``): :func:`dialect`, :func:`spoken`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

__all__ = [
    "VERSIONS",
    "Binding",
    "Choice",
    "NoInterface",
    "Origin",
    "Origins",
    "Version",
    "choose",
    "dialect",
    "grpc_target",
    "in_words",
    "origin_of",
    "same_origin",
    "spoken",
]

Version = Literal["1.0", "0.3"]
Binding = Literal["JSONRPC", "HTTP+JSON", "GRPC"]
#: What we speak, best first.
VERSIONS: tuple[Version, ...] = ("1.0", "0.3")
#: What we speak, in the order we prefer it.
PREFERENCES: tuple[tuple[Binding, Version], ...] = (
    ("JSONRPC", "1.0"),
    ("JSONRPC", "0.3"),
    ("HTTP+JSON", "1.0"),
    ("GRPC", "1.0"),
)
#: Scheme, host (lowercase, IPv6 without brackets) and port.
Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: gRPC's schemes as the origins they are (no default port: a target names one).
_GRPC_SCHEMES = {"grpcs": "https", "grpc": "http"}


def origin_of(url: str) -> Origin | None:
    """The origin of an ``http(s)`` URL, its port made explicit, or of a
    ``grpc(s)://host:port`` target (as ``http(s)``); None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme in _GRPC_SCHEMES and parts.hostname and port:
        return _GRPC_SCHEMES[scheme], parts.hostname.lower(), port
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def grpc_target(interface_url: str, card_url: str) -> str:
    """A card's gRPC interface as the ``grpc(s)://host:port`` we call (module
    doc; an ``http(s)://`` URL is taken as ``grpc(s)://``). Anything else keeps
    its scheme, which no origin allows."""
    text = interface_url.strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        as_grpc = {"https": "grpcs", "http": "grpc"}.get(scheme.lower(), scheme.lower())
        return f"{as_grpc}://{rest}"
    secure = urlsplit(card_url).scheme.lower() == "https"
    return f"{'grpcs' if secure else 'grpc'}://{text}"


def is_loopback(host: str) -> bool:
    """``localhost`` (RFC 6761 keeps it on this machine) or a loopback address."""
    if host in {"localhost", "localhost."}:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:  # a name
        return False


def same_origin(one: Origin | None, other: Origin | None) -> bool:
    """Equal origins, loopback names and addresses being one host (module doc)."""
    if one is None or other is None:
        return False
    if one == other:
        return True
    return one[0::2] == other[0::2] and is_loopback(one[1]) and is_loopback(other[1])


def in_words(origin: Origin | None) -> str:
    """An origin in words without a URL (callers' errors are scrubbed of URLs)."""
    if origin is None:
        return "no usable URL"
    scheme, host, port = origin
    return f"{'[' + host + ']' if ':' in host else host}:{port} over {scheme}"


@dataclass(frozen=True)
class Origins:
    """Where one peer may be called: its configured URL's origin, and its ``endpoints``."""

    home: Origin | None
    others: frozenset[Origin] = frozenset()

    @classmethod
    def of(cls, url: str, endpoints: Iterable[str] = ()) -> Origins:
        listed = (origin_of(entry) for entry in endpoints)
        return cls(origin_of(url), frozenset(o for o in listed if o is not None))

    def allows(self, url: str) -> bool:
        origin = origin_of(url)
        return same_origin(origin, self.home) or any(
            same_origin(origin, other) for other in self.others
        )


class NoInterface(Exception):
    """The card offers no interface we speak on an allowed origin.
    ``refused``: the URL of the best one it offers elsewhere (None: it
    offers none at all)."""

    def __init__(self, refused: str | None) -> None:
        super().__init__(
            refused or "no JSON-RPC interface of A2A 1.0 or 0.3, nor HTTP+JSON or gRPC of 1.0"
        )
        self.refused = refused


@dataclass(frozen=True)
class Choice:
    version: Version
    endpoint: str
    #: Interfaces the card preferred that were refused (for the log).
    passed_over: tuple[str, ...]
    binding: Binding = "JSONRPC"


def choose(interfaces: Sequence[Mapping[str, Any]], card_url: str, origins: Origins) -> Choice:
    """The interface to call (see the module doc); URLs are resolved against
    ``card_url``. Raises :class:`NoInterface`."""
    passed_over: list[str] = []
    for binding, version in PREFERENCES:
        offered = [
            _resolved(binding, str(interface.get("url", "")), card_url)
            for interface in interfaces
            if interface.get("protocolBinding") == binding
            and _speaks(str(interface.get("protocolVersion", "")), version)
        ]
        allowed = [url for url in offered if origins.allows(url)]
        if allowed:
            if allowed[0] != offered[0]:
                passed_over.append(offered[0])
                # Not where the card prefers: the configured origin first.
                allowed.sort(key=lambda url: not same_origin(origin_of(url), origins.home))
            return Choice(version, allowed[0], tuple(passed_over), binding)
        passed_over += offered[:1]
    raise NoInterface(passed_over[0] if passed_over else None)


def _resolved(binding: Binding, url: str, card_url: str) -> str:
    return grpc_target(url, card_url) if binding == "GRPC" else urljoin(card_url, url)


def dialect(binding: Binding, version: Version) -> str:
    """What a delegation's row keeps of the binding and version it speaks."""
    return version if binding == "JSONRPC" else f"{binding} {version}"


def spoken(text: str) -> tuple[Binding, Version]:
    """The binding and version of a row's :func:`dialect` ("" or anything
    unknown: JSON-RPC of A2A 1.0)."""
    written, _, version = text.rpartition(" ")
    known: Version = "0.3" if version == "0.3" else "1.0"
    binding: Binding = "JSONRPC"
    if written in ("HTTP+JSON", "GRPC"):
        binding = "HTTP+JSON" if written == "HTTP+JSON" else "GRPC"
    return binding, known


def _speaks(offered: str, version: str) -> bool:
    return offered == version or offered.startswith(version + ".")
