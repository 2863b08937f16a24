"""SSL contexts for mutual TLS, and who a peer certificate says it is.

One place builds every context, server and client alike, so the whole
node agrees on the rules: TLS 1.2 or newer, the peer must present a
certificate that chains to the trust bundle (one or more CA files), and a
client checks the server's name against its certificate's SANs.

Identity: a certificate's first URI SAN (``spiffe://domain/agent/name``).
It is what authorization policies and tasks record, on both sides of a
connection. The subject CN is an identity only when a node's configuration
says so (``tls: {identity_from_cn: true}``, for a CA that cannot issue URI
SANs), and then only for a certificate without a URI SAN: a CN is free text
that any CA of the bundle may write, so by default a certificate whose CN
*reads* ``spiffe://example.org/agent/client`` is nobody.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent_node.errors import ConfigError

__all__ = ["client_context", "http_alpn", "identity_of", "server_context"]


def http_alpn(http2: bool) -> list[str]:
    """The protocols a node's HTTP port offers by ALPN, most preferred first."""
    return ["h2", "http/1.1"] if http2 else ["http/1.1"]


def server_context(
    cert: Path,
    key: Path,
    trust: Sequence[Path],
    *,
    require_client_cert: bool = True,
    ask_client_cert: bool = True,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """What a node serves with: its chain and key; clients verified against ``trust``.

    ``require_client_cert=False`` asks for a certificate without requiring
    it: a node serves so, and its app refuses every request that came
    without one with an HTTP 401 saying what is missing (an empty reply at
    the handshake explains nothing). A certificate that is presented must
    still chain to ``trust``. ``ask_client_cert=False`` asks for none
    (``auth.mtls: false``: server TLS only). ``alpn``: the protocols offered
    by ALPN, most preferred first (none: no ALPN).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(context, cert, key, trust)
    if not ask_client_cert:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def client_context(cert: Path | None, key: Path | None, trust: Sequence[Path]) -> ssl.SSLContext:
    """What a node calls peers with: its certificate (when given), servers
    verified against ``trust`` and their host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(context, cert, key, trust)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _common(
    context: ssl.SSLContext, cert: Path | None, key: Path | None, trust: Sequence[Path]
) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not trust:
        raise ConfigError("tls: a trust bundle (one or more CA files) is required")
    for bundle in trust:
        try:
            context.load_verify_locations(cafile=str(bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls: trust bundle {bundle}: {_reason(exc)}") from None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls: certificate {cert} / key {key}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return getattr(exc, "reason", None) or str(exc)


def identity_of(der: bytes, *, from_cn: bool = False) -> str | None:
    """The identity a DER certificate names: its first URI SAN; without one,
    its subject CN when ``from_cn``, else None (see the module doc)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return str(uris[0])
    except x509.ExtensionNotFound:
        pass
    if not from_cn:
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
