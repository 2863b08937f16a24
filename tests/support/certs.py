"""Certificates for tests: a CA of our PKI and certificates it issued."""

from __future__ import annotations

from pathlib import Path

from agent_node.security import pki


def make_certs(folder: Path, *names: str, trust_domain: str = "example.org") -> Path:
    """A CA of ``trust_domain`` in ``folder`` and a certificate (``NAME.pem``,
    ``NAME-key.pem``) for each of ``names``, as ``agent-node certs`` writes
    them; ``folder``."""
    pki.init_ca(folder, trust_domain=trust_domain)
    for name in names:
        pki.issue(folder, name)
    return folder
