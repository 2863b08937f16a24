"""Who a certificate says it is: its URI SAN; its CN only when the node says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from support.certs import issue_cn_only, make_certs

from agent_node.config import NodeConfig, TlsSettings
from agent_node.security.tls import identity_of

CLIENT = "spiffe://example.org/agent/client"


def der(path: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificates(path.read_bytes())[0].public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_certs(tmp_path_factory.mktemp("identity"), "alice")
    issue_cn_only(folder, "spoof", CLIENT)
    issue_cn_only(folder, "legacy", "legacy-client")
    return folder


def test_the_uri_san_is_the_identity_whatever_the_rule(certs: Path) -> None:
    alice = der(certs / "alice.pem")
    assert identity_of(alice) == "spiffe://example.org/agent/alice"
    assert identity_of(alice, from_cn=True) == "spiffe://example.org/agent/alice"


def test_a_cn_that_reads_like_an_identity_is_nobody_by_default(certs: Path) -> None:
    assert identity_of(der(certs / "spoof.pem")) is None
    assert identity_of(der(certs / "legacy.pem")) is None


def test_with_the_flag_a_certificate_without_uri_san_is_its_cn(certs: Path) -> None:
    assert identity_of(der(certs / "spoof.pem"), from_cn=True) == CLIENT
    assert identity_of(der(certs / "legacy.pem"), from_cn=True) == "legacy-client"


def test_what_is_not_a_certificate_names_nobody() -> None:
    assert identity_of(b"not DER", from_cn=True) is None


def test_the_flag_is_off_unless_the_tls_settings_turn_it_on() -> None:
    files = {"cert": "n.pem", "key": "n-key.pem", "trust": ["ca.pem"]}
    assert not NodeConfig(name="n").identity_from_cn
    assert not NodeConfig.model_validate({"name": "n", "tls": files}).identity_from_cn
    on = NodeConfig.model_validate({"name": "n", "tls": {**files, "identity_from_cn": True}})
    assert on.identity_from_cn
    # --cert-dir/--identity replace the files, not how identities are read.
    moved = on.with_overrides(tls=TlsSettings(cert="m.pem", key="m-key.pem", trust=["ca.pem"]))
    assert moved.identity_from_cn and moved.tls is not None and moved.tls.cert == "m.pem"
    explicit = TlsSettings(cert="m.pem", key="k", trust=["ca.pem"], identity_from_cn=False)
    assert not on.with_overrides(tls=explicit).identity_from_cn
