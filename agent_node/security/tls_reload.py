"""Certificates that rotate without a restart.

Deployments replace a node's certificate files while it runs: cert-manager
renews at two thirds of a certificate's life and swaps the files (a
Kubernetes secret volume swaps its ``..data`` symlink), a SPIFFE agent
writes a new SVID every hour or so, and a CA is rotated by adding the new
one to the trust bundle and, later, removing the old. A node that kept
what it read at its start would fail every handshake once its certificate
expired, and would trust a removed CA until restarted.

:class:`CertificateFiles` watches one set of files — the certificate chain,
its key, the trust bundle — by ``stat`` (following symlinks: device, inode,
size, mtime), when a look is due (every ``interval`` seconds): from a
serving node's :class:`Watching` loop, at once on ``SIGHUP`` (as nginx and
Envoy operators expect), and whenever a context made from the files opens
a connection. A changed set is taken only whole and sound — every file
there, the certificate readable and valid now, the key its own, the bundle
readable: otherwise the contexts keep what they have, one line names the
file and why, and each later look tries again. A set taken logs one line
(identity, serial, not-after). There is one :class:`CertificateFiles` per
set of paths in a process (:func:`watched`), however many contexts follow it.

A context follows its files by being built again by the function that
built it first (:mod:`.tls` builds them all), so the new one has the
options, verification and ALPN of the old. Only new handshakes get it:
open connections (an SSE stream, a kept-alive connection) keep theirs.

* Served (:func:`serving`): the listening context's ``sni_callback``, which
  OpenSSL calls for every ClientHello, with SNI or without, puts the
  current context on the new connection (``SSLObject.context``, OpenSSL's
  ``SSL_set_SSL_CTX``): its certificate, trust store and ALPN. The verify
  mode and options stay the listening context's: the same, built alike.
* Called (:func:`calling`): what httpx (and asyncio) are given is a
  stand-in context whose ``wrap_bio`` and ``wrap_socket``, called once per
  new connection, wrap with the current context; ALPN set on it (httpcore
  sets it before each connection) goes to the context it wraps with.
  httpx's pool holds the context it was given for its whole life, and a new
  client would cut the old one's kept-alive connections and streams.

Always a new context, never new files loaded into the one in use: an
OpenSSL trust store only grows, so a CA removed from the bundle would stay
trusted; and a certificate loaded without its new key leaves a context
that can serve neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import ssl
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent_node.errors import ConfigError
from agent_node.security.tls import client_context, identity_of

__all__ = [
    "RELOAD_INTERVAL",
    "CertificateFiles",
    "Listener",
    "Outcome",
    "Watching",
    "calling",
    "client_from_files",
    "serving",
    "watched",
]

log = logging.getLogger(__name__)

#: Seconds between two looks at a set of files, unless configured
#: (``tls: {reload_interval: …}``): a look is a ``stat`` of each file.
RELOAD_INTERVAL = 5.0

#: What a look that found changed files (or a ``SIGHUP``) came to.
Outcome = Literal["success", "failure"]
#: Told the not-after (Unix time; None: unreadable) of the certificate in
#: use, when subscribed (outcome None) and after each outcome.
Listener = Callable[[float | None, Outcome | None], None]

#: A file's device, inode, size and mtime (ns); None: not there.
_Stat = tuple[int, int, int, int] | None

_WATCHED: weakref.WeakValueDictionary[tuple[str, ...], CertificateFiles] = (
    weakref.WeakValueDictionary()
)


def watched(
    cert: Path, key: Path, trust: Sequence[Path], *, interval: float | None = None
) -> CertificateFiles:
    """The process's :class:`CertificateFiles` of these paths (made on first
    ask); ``interval``, when given, becomes its seconds between looks."""
    # Not resolved: a symlink swapped (Kubernetes' ``..data``) is followed anew at each look.
    paths = tuple(os.path.abspath(p) for p in (cert, key, *trust))
    found = _WATCHED.get(paths)
    if found is None:
        found = _WATCHED[paths] = CertificateFiles(cert, key, trust)
    if interval is not None:
        found.interval = interval
    return found


class CertificateFiles:
    """A certificate chain, its key and a trust bundle, looked at for changes
    (see the module doc)."""

    def __init__(
        self, cert: Path, key: Path, trust: Sequence[Path], interval: float = RELOAD_INTERVAL
    ) -> None:
        self.cert, self.key, self.trust = cert, key, list(trust)
        self.interval = interval
        #: Sets taken so far: a context made from an earlier one is made again.
        self.generation = 0
        #: When the certificate in use expires (Unix time; None: unreadable).
        self.not_after = _not_after(cert)
        self._taken = self._stat()
        self._looked = time.monotonic()
        self._refused: str | None = None
        self._listeners: list[Listener] = []

    def due(self) -> bool:
        """Whether ``interval`` seconds have passed since the last look."""
        return self.wait() == 0.0

    def wait(self) -> float:
        """Seconds until a look is due."""
        return max(0.0, self._looked + self.interval - time.monotonic())

    def intact(self) -> bool:
        """Whether the files are still the set taken last."""
        return self._stat() == self._taken

    def look(self, *, force: bool = False) -> Outcome | None:
        """Look at the files now; take them if they changed (with ``force``,
        as on SIGHUP: whether or not they seem to) and are sound. None: they
        did not change (or are changing still: the next look takes them)."""
        self._looked = time.monotonic()
        seen = self._stat()
        if seen == self._taken and not force and self._refused is None:
            return None
        try:
            leaf = self._sound(seen)
        except _Refused as exc:
            return self._refuse(str(exc), told=force)
        if self._stat() != seen:  # written to while read
            return None
        self._taken, self._refused = seen, None
        self.generation += 1
        self.not_after = leaf.not_valid_after_utc.timestamp()
        # WARNING, as what goes wrong is: rare, about who this node is, and
        # shown by the text log, which starts there.
        log.warning(
            "tls: reloaded %s: %s, serial %x, valid until %s",
            self.cert,
            identity_of(leaf.public_bytes(Encoding.DER)) or "no URI SAN",
            leaf.serial_number,
            _when(leaf.not_valid_after_utc),
        )
        self._tell("success")
        return "success"

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` the certificate in use now and after each
        outcome; returns the way to stop."""
        self._listeners.append(listener)
        listener(self.not_after, None)
        return lambda: self._listeners.remove(listener)

    def _sound(self, seen: Sequence[_Stat]) -> x509.Certificate:
        """The new certificate, if the set is whole and sound; else :class:`_Refused`."""
        for path, stat in zip(self._paths(), seen, strict=True):
            if stat is None:
                raise _Refused(f"{path} is missing")
        try:
            leaf = x509.load_pem_x509_certificates(self.cert.read_bytes())[0]
        except (OSError, ValueError) as exc:
            raise _Refused(f"{self.cert}: no PEM certificate could be read ({exc})") from None
        now = dt.datetime.now(dt.UTC)
        if leaf.not_valid_after_utc <= now:
            raise _Refused(f"{self.cert} expired on {_when(leaf.not_valid_after_utc)}")
        if leaf.not_valid_before_utc > now:
            raise _Refused(f"{self.cert} is valid only from {_when(leaf.not_valid_before_utc)}")
        try:
            client_context(self.cert, self.key, self.trust)  # key matched, bundle read
        except ConfigError as exc:
            raise _Refused(str(exc).removeprefix("tls: ")) from None
        return leaf

    def _refuse(self, reason: str, *, told: bool) -> Outcome:
        """Said once per reason, however many looks find it (again when ``told``: SIGHUP)."""
        if reason != self._refused or told:
            self._refused = reason
            log.warning(
                "tls: kept the certificate in use: %s; trying again every %g s and on SIGHUP",
                reason,
                self.interval,
            )
            self._tell("failure")
        return "failure"

    def _tell(self, outcome: Outcome) -> None:
        for listener in list(self._listeners):
            listener(self.not_after, outcome)

    def _paths(self) -> list[Path]:
        return [self.cert, self.key, *self.trust]

    def _stat(self) -> list[_Stat]:
        return [_stat_of(path) for path in self._paths()]


class _Refused(Exception):
    """A set of files not taken, and why."""


class _Following:
    """A context made by ``build``, made again after each set its files take."""

    def __init__(self, files: CertificateFiles, build: Callable[[], ssl.SSLContext]) -> None:
        self.files = files
        self._build = build
        self._generation = files.generation
        self.context = build()  # a mistake fails the start, as before

    def current(self) -> ssl.SSLContext:
        files = self.files
        if files.due():
            files.look()
        if self._generation != files.generation:
            self._generation = files.generation
            try:
                context = self._build()
            except ConfigError as exc:  # changed again since taken: the next look
                log.warning("tls: kept the context in use: %s", exc)
                return self.context
            if files.intact():  # not a set half written since
                self.context = context
        return self.context


def serving(files: CertificateFiles, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """A listening context, made by ``build``, whose every new connection
    gets the context ``build`` makes of ``files``' latest set."""
    following = _Following(files, build)
    listening = following.context

    def to_current(ssl_object: Any, _server_name: str | None, _context: ssl.SSLContext) -> None:
        current = following.current()
        if ssl_object.context is not current:
            ssl_object.context = current

    listening.sni_callback = to_current
    return listening


def calling(files: CertificateFiles, build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """A client context whose every new connection is made with the context
    ``build`` makes of ``files``' latest set."""
    return _Calling(_Following(files, build))


def client_from_files(cert: Path, key: Path, trust: Sequence[Path]) -> ssl.SSLContext:
    """:func:`~.tls.client_context` of these files, following them."""
    return calling(watched(cert, key, trust), lambda: client_context(cert, key, trust))


class _Calling(ssl.SSLContext):
    """Stands in for the context a :class:`_Following` holds now (module doc).
    Loading files into it changes nothing: its files are its ``build``'s."""

    _following: _Following
    _alpn: list[str] | None

    def __new__(cls, following: _Following) -> _Calling:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
        self._following = following
        self._alpn = None
        return self

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        self._alpn = list(alpn_protocols)

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self._current().wrap_bio(
            incoming, outgoing, server_side, server_hostname, session=session
        )

    def wrap_socket(
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return self._current().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            server_hostname,
            session=session,
        )

    def _current(self) -> ssl.SSLContext:
        context = self._following.current()
        if self._alpn is not None:
            context.set_alpn_protocols(self._alpn)
        return context


class Watching:
    """A serving node's looks at its files: every ``interval``, and at once
    on SIGHUP (POSIX, from the main thread), until :meth:`stop`."""

    def __init__(self, files: CertificateFiles, listener: Listener | None = None) -> None:
        self.files = files
        self._unsubscribe = files.subscribe(listener) if listener is not None else None
        self._task = asyncio.create_task(self._every_interval())
        self._hangup = _on_hangup(asyncio.get_running_loop())

    async def stop(self) -> None:
        if self._hangup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._hangup = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.files.wait())
            if self.files.due():  # else a connection looked meanwhile
                self.files.look()


def _on_hangup(loop: asyncio.AbstractEventLoop) -> bool:
    """SIGHUP looks at every set of files of the process; whether it now does."""
    try:
        loop.add_signal_handler(signal.SIGHUP, _hung_up)
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        return False  # no SIGHUP (Windows), or not the main thread
    return True


def _hung_up() -> None:
    for files in list(_WATCHED.values()):
        files.look(force=True)


def _stat_of(path: Path) -> _Stat:
    try:
        found = os.stat(path)  # follows symlinks
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _not_after(cert: Path) -> float | None:
    try:
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    except (OSError, ValueError):
        return None
    return leaf.not_valid_after_utc.timestamp()


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
