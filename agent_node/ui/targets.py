"""The nodes the UI looks at, and who it is toward them.

A :class:`Target` is one node: the name the page uses for it, its base URL
and the identity its certificate must name (when known). They come from
node configurations (each node itself, and the peers it names — the
network as that node sees it) and from ``--peer [NAME=]URL``. A node's own
URL is its ``public_url``, else its listen address, over HTTPS when it
has ``tls:`` — or when the UI itself was given ``--cert-dir``, the way
such a node is usually served (:func:`_url_of`).

The UI presents one client certificate to every node: ``--cert-dir DIR
--identity NAME`` (what ``agent-node certs issue NAME`` wrote), else the
``tls:`` of the first configuration given. That identity must be among
each node's ``policy.operators``. Plain ``http://`` targets (nodes run
with ``--insecure-dev``) need no certificate.

The nodes the operator named (``--config``, ``--peer``) are the operator's;
one named only in a configuration's ``peers:`` is another party's
(:attr:`Target.peer`), and never stands in for the operator's
(:mod:`.replicas`).

:func:`same_node` tells whether a URL a delegation names is one of them:
same scheme and port, and the same host — the loopback names
(``localhost``, ``127.0.0.1``, ``::1``) counting as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent_node.config import NodeConfig, TlsSettings, load_config
from agent_node.errors import ConfigError

__all__ = ["Network", "Target", "build_network", "same_node"]

_KEY = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,100}$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class Target:
    """One node of the network the UI shows."""

    #: The name the page and the UI's paths use (unique).
    key: str
    #: Its base URL (no trailing slash).
    url: str
    #: The identity its certificate must name; None: any the trust bundle vouches for.
    identity: str | None = None
    #: Named only as a peer of a configured node (a ``peers:`` entry), not
    #: by the operator (``--config``, ``--peer``): another party's node,
    #: which never stands in for one of the operator's (:mod:`.replicas`).
    peer: bool = False


@dataclass(frozen=True)
class Network:
    """The targets, in the order given, and the client identity toward them."""

    targets: dict[str, Target]
    #: The client certificate, key and trust bundle (resolved); None: plain HTTP only.
    tls: tuple[Path, Path, list[Path]] | None

    def find(self, url: str | None, peer: str | None) -> Target | None:
        """The target a delegation went to: by its endpoint's origin, else by
        the peer's configured name."""
        if url:
            for target in self.targets.values():
                if same_node(url, target.url):
                    return target
        return self.targets.get(peer) if peer else None


def same_node(a: str, b: str) -> bool:
    """Whether two URLs point at the same origin (loopback names alike)."""
    try:
        one, two = urlsplit(a), urlsplit(b)
        ports = (one.port or _default_port(one.scheme), two.port or _default_port(two.scheme))
    except ValueError:
        return False
    hosts = [(h or "").lower() for h in (one.hostname, two.hostname)]
    same_host = hosts[0] == hosts[1] or (hosts[0] in _LOOPBACK and hosts[1] in _LOOPBACK)
    return one.scheme == two.scheme and ports[0] == ports[1] and same_host


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def build_network(configs: list[Path], peers: list[str], tls: TlsSettings | None) -> Network:
    """The targets of ``configs`` (each node and its peers) and ``peers``
    (``URL`` or ``NAME=URL``); ``tls`` (``--cert-dir``/``--identity``) is
    the client identity, else the first configuration's."""
    loaded = [load_config(path) for path in configs]
    found: list[Target] = []
    for config in loaded:
        if config.listen.port == 0 and not config.public_url:
            raise ConfigError(
                f"{config.name} listens on a free port (0): give its URL with --peer instead"
            )
        found.append(Target(config.name, _url_of(config, tls is not None)))
        found += [Target(p.name, p.url.rstrip("/"), p.identity, peer=True) for p in config.peers]
    found += [_peer(spec) for spec in peers]
    targets: dict[str, Target] = {}
    for target in found:
        known = next((t for t in targets.values() if same_node(target.url, t.url)), None)
        if known is not None:  # named twice (a node, and a peer of another)
            peer = known.peer and target.peer  # the operator's if the operator named it
            targets[known.key] = Target(known.key, known.url, known.identity, peer=peer)
            continue
        key, n = target.key, 2
        while key in targets:
            key, n = f"{target.key}-{n}", n + 1
        targets[key] = Target(key, target.url, target.identity, peer=target.peer)
    if not targets:
        raise ConfigError("no nodes to show: give --config FILE or --peer URL")
    files = _tls_files(tls, loaded)
    secure = [t.key for t in targets.values() if t.url.startswith("https://")]
    if secure and files is None:
        raise ConfigError(
            f"{', '.join(secure)} speak(s) HTTPS: give the UI a client certificate"
            " (--cert-dir DIR --identity NAME, or a --config with tls:)"
        )
    return Network(targets, files)


def _url_of(config: NodeConfig, certified: bool) -> str:
    """Where a configured node is reached. A configuration without ``tls:``
    is served either with ``--cert-dir``/``--identity`` or with
    ``--insecure-dev``: the UI guesses the first when it was given a
    certificate the same way, the second otherwise."""
    if config.public_url or config.tls is not None or not certified:
        return config.url
    return "https" + config.url.removeprefix("http")


def _peer(spec: str) -> Target:
    name, equals, url = spec.partition("=")
    if not equals:
        name, url = "", spec
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"--peer {spec!r}: not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--peer {spec!r}: give an http:// or https:// URL")
    key = name.strip() or (f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname)
    if not _KEY.match(key):
        raise ConfigError(f"--peer {spec!r}: a name is letters, digits and . _ : -")
    return Target(key, url)


def _tls_files(
    given: TlsSettings | None, configs: list[NodeConfig]
) -> tuple[Path, Path, list[Path]] | None:
    if given is not None:
        return Path(given.cert), Path(given.key), [Path(t) for t in given.trust]
    return next((c.tls_files() for c in configs if c.tls is not None), None)
