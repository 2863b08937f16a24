"""Certificates for tests: a CA of our PKI and certificates it issued."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent_node.security import pki


def make_certs(folder: Path, *names: str, trust_domain: str = "example.org") -> Path:
    """A CA of ``trust_domain`` in ``folder`` and a certificate (``NAME.pem``,
    ``NAME-key.pem``) for each of ``names``, as ``agent-node certs`` writes
    them; ``folder``."""
    pki.init_ca(folder, trust_domain=trust_domain)
    for name in names:
        pki.issue(folder, name)
    return folder


def issue_cn_only(folder: Path, name: str, common_name: str) -> Path:
    """A certificate (``NAME.pem``, the chain, and ``NAME-key.pem``) signed by
    the CA in ``folder`` as a CA that cannot write URI SANs would issue it:
    subject CN ``common_name``, SANs DNS ``localhost`` and IP ``127.0.0.1``
    only (so it still serves on loopback), for both sides of mutual TLS."""
    ca = x509.load_pem_x509_certificate((folder / pki.CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((folder / pki.CA_KEY).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    (folder / f"{name}-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / f"{name}.pem"
