"""A development PKI: one CA per trust domain, one certificate per node.

``agent-node certs init`` writes the CA into a folder (``certs/`` by
default); ``agent-node certs issue NAME`` writes ``NAME.pem`` (the node's
certificate followed by the CA's, a chain a server can present as is) and
``NAME-key.pem``. Keys are P-256, written 0600, never overwritten silently.

A node certificate is for both sides of mutual TLS (extended key usage
serverAuth and clientAuth) and names the node three ways: DNS ``localhost``
and IP ``127.0.0.1`` (so a node on this machine passes hostname checks) and
the URI ``spiffe://<trust-domain>/agent/<NAME>``, its identity to peers.

This is for development and tests: a production deployment uses its
organisation's CA instead (``certs/README.md``); nothing else in agent-node
depends on certificates having been made here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent_node.errors import ConfigError, UsageError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "DEFAULT_TRUST_DOMAIN",
    "CertInfo",
    "NodeFiles",
    "ca_trust_domain",
    "describe",
    "existing",
    "init_ca",
    "issue",
    "spiffe_id",
]

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
#: The examples' trust domain (their policies name spiffe://example.org/…), so
#: that one development CA in ``certs/`` serves them and a new agent alike.
DEFAULT_TRUST_DOMAIN = "example.org"
CA_DAYS = 3650
NODE_DAYS = 365

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
_DOMAIN = re.compile(
    r"^[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class NodeFiles:
    """What :func:`issue` wrote."""

    cert: Path
    key: Path
    identity: str


def spiffe_id(trust_domain: str, name: str) -> str:
    return f"spiffe://{trust_domain}/agent/{name}"


def init_ca(folder: Path, *, trust_domain: str = DEFAULT_TRUST_DOMAIN, force: bool = False) -> Path:
    """Write a new CA for ``trust_domain`` into ``folder``; returns its certificate's path."""
    if not _DOMAIN.match(trust_domain):
        raise UsageError(f"trust domain {trust_domain!r}: use lowercase DNS labels (example.org)")
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if not force and (cert_path.exists() or key_path.exists()):
        raise UsageError(
            f"{folder} already holds a CA; certificates it issued would stop verifying"
            " if it were replaced (use --force to replace it anyway)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agent-node dev CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"agent-node dev CA {trust_domain}"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        # The CA names its trust domain, so `issue` knows it.
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():  # wherever the folder is, git never takes the keys
        ignore.write_text("# private keys: never commit them\n*-key.pem\n")
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def issue(
    folder: Path,
    name: str,
    *,
    days: int = NODE_DAYS,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    force: bool = False,
    not_before: dt.datetime | None = None,
) -> NodeFiles:
    """Issue a node certificate signed by the CA in ``folder``.

    ``not_before`` (with ``days``) places the validity window, e.g. in the
    past for an expired certificate in a test.
    """
    if not _NAME.match(name):
        raise UsageError(f"node name {name!r}: letters, digits, '.', '_' and '-' only")
    ca_cert, ca_key = _load_ca(folder)
    trust_domain = _trust_domain(ca_cert)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    if not force and (cert_path.exists() or key_path.exists()):
        raise UsageError(f"{cert_path} exists already (use --force to issue it again)")
    identity = spiffe_id(trust_domain, name)
    try:
        addresses = [ipaddress.ip_address(a) for a in ip_addresses]
    except ValueError as exc:
        raise UsageError(f"--ip: {exc}") from None
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity)]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(a) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    cert_path.write_bytes(chain)
    return NodeFiles(cert_path, key_path, identity)


def ca_trust_domain(folder: Path) -> str | None:
    """The trust domain of the CA in ``folder`` (None: there is none)."""
    path = folder / CA_CERT
    if not path.is_file():
        return None
    try:
        return _trust_domain(x509.load_pem_x509_certificate(path.read_bytes()))
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate file") from None


def existing(folder: Path, name: str) -> NodeFiles | None:
    """``NAME``'s certificate in ``folder`` when it is there, usable as it is:
    its key beside it, signed by the CA in ``folder``, not expired. None when
    there is none; a :class:`UsageError` saying what is wrong otherwise."""
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    if not cert_path.exists() and not key_path.exists():
        return None
    again = f"`agent-node certs issue {name} --dir {folder} --force` issues it again"
    if not cert_path.exists() or not key_path.exists():
        missing = cert_path if not cert_path.exists() else key_path
        raise UsageError(f"{missing} is missing: {again}")
    ca, _ = _load_ca(folder)
    try:
        leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise UsageError(
            f"{cert_path} was not issued by the CA in {folder} (spiffe://{_trust_domain(ca)}):"
            f" {again}"
        ) from None
    if leaf.not_valid_after_utc < _now():
        raise UsageError(f"{cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}: {again}")
    uris = [s for s in _info(cert_path, leaf).sans if s.startswith("URI:")]
    identity = uris[0].removeprefix("URI:") if uris else spiffe_id(_trust_domain(ca), name)
    return NodeFiles(cert_path, key_path, identity)


@dataclass(frozen=True)
class CertInfo:
    """What ``certs show`` prints about one certificate."""

    path: Path
    subject: str
    issuer: str
    sans: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    fingerprint: str

    @property
    def expired(self) -> bool:
        return self.not_after < _now()


def describe(path: Path) -> list[CertInfo]:
    """Every certificate in a PEM file, first (the leaf) to last."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate file") from None
    return [_info(path, cert) for cert in certs]


def _info(path: Path, cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [_general_name(n) for n in san]
    except x509.ExtensionNotFound:
        sans = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=sans,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if not cert_path.exists() or not key_path.exists():
        raise UsageError(f"no CA in {folder}: run `agent-node certs init` first")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path}: not the EC key `certs init` writes")
    return cert, key


def _trust_domain(ca: x509.Certificate) -> str:
    try:
        san = ca.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return DEFAULT_TRUST_DOMAIN
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            return uri.removeprefix("spiffe://").rstrip("/")
    return DEFAULT_TRUST_DOMAIN


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
