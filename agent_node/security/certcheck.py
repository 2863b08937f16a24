"""Whether a node's certificate will work, said in one line (``agent-node doctor``).

:func:`inspect` reads a certificate, its key and the trust bundle the way a
node loads them, and names the first thing that would make mutual TLS fail
— a missing file, a key that is not the certificate's, a certificate not
valid now or not issued by any CA of the bundle — or a trust domain that is
not the one the configuration's peers and policy name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

__all__ = ["Inspected", "inspect"]


@dataclass(frozen=True)
class Inspected:
    #: What would fail, in words; None: nothing.
    problem: str | None
    identity: str | None = None
    not_after: dt.datetime = dt.datetime.max


def inspect(cert: Path, key: Path, trust: Sequence[Path], domains: Iterable[str]) -> Inspected:
    """See the module doc; ``domains``: the trust domains the configuration names."""
    for path in (cert, key, *trust):
        if not path.is_file():
            return Inspected(f"{path} is missing")
    try:
        leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        cas = [c for path in trust for c in x509.load_pem_x509_certificates(path.read_bytes())]
    except (ValueError, TypeError) as exc:
        return Inspected(f"{cert} / {key}: cannot read them ({exc})")
    identity = _uri(leaf)
    found = Inspected(None, identity, leaf.not_valid_after_utc)  # aware, UTC
    now = dt.datetime.now(dt.UTC)
    if private.public_key() != leaf.public_key():
        return _with(found, f"{key} is not the key of {cert}")
    if leaf.not_valid_after_utc < now:
        return _with(found, f"{cert} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        return _with(found, f"{cert} is valid only from {leaf.not_valid_before_utc:%Y-%m-%d}")
    if not any(_issued_by(leaf, ca) for ca in cas):
        bundle = ", ".join(map(str, trust))
        return _with(found, f"{cert} was not issued by a CA of the trust bundle ({bundle})")
    domain = identity.split("/")[2] if identity and identity.startswith("spiffe://") else None
    others = sorted(set(domains) - {domain})
    if domain is not None and others:
        return _with(
            found,
            f"{cert} names {identity}, but the configuration's peers and policy name"
            f" spiffe://{others[0]}/…: use certificates of that trust domain",
        )
    return found


def _with(found: Inspected, problem: str) -> Inspected:
    return Inspected(problem, found.identity, found.not_after)


def _issued_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _uri(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None
