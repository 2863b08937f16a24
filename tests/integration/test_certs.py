"""The development PKI: certificates made by `agent-node certs`, used in real
mutual-TLS handshakes on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent_node.cli.main import cli
from agent_node.errors import ConfigError, UsageError
from agent_node.security import pki
from agent_node.security.tls import client_context, identity_of, server_context


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA for example.org with nodes alice, bob, an expired carol; a rogue CA with mallory."""
    folder = tmp_path_factory.mktemp("pki") / "certs"
    pki.init_ca(folder, trust_domain="example.org")
    pki.issue(folder, "alice")
    pki.issue(folder, "bob")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    pki.issue(folder, "carol", days=1, not_before=past)
    rogue = folder.parent / "rogue"
    pki.init_ca(rogue, trust_domain="example.org")
    pki.issue(rogue, "mallory")
    return folder


def test_the_cli_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    out = run("certs", "init", "--dir", str(folder), "--trust-domain", "acme.test")
    assert "spiffe://acme.test" in out
    out = run("certs", "issue", "web-1", "--dir", str(folder), "--dns", "web-1.acme.test")
    assert "spiffe://acme.test/agent/web-1" in out
    for key in ("ca-key.pem", "web-1-key.pem"):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*-key.pem"
    shown = run("certs", "show", "--dir", str(folder))
    assert "URI:spiffe://acme.test/agent/web-1, DNS:localhost, DNS:web-1.acme.test" in shown
    assert "IP:127.0.0.1" in shown and "(valid)" in shown and "[CA]" in shown

    again = CliRunner().invoke(cli, ["certs", "init", "--dir", str(folder)])
    assert again.exit_code == 2
    assert f"{folder} holds a CA for spiffe://acme.test, not spiffe://example.org" in again.output
    assert f"--dir {folder / 'example.org'}" in again.output and "--force" in again.output
    none = CliRunner().invoke(cli, ["certs", "issue", "x", "--dir", str(tmp_path / "empty")])
    assert none.exit_code == 2 and "run `agent-node certs init` first" in none.output


def test_the_same_ca_and_certificates_asked_again_are_kept(tmp_path: Path) -> None:
    # The examples' READMEs each start with `certs init --trust-domain example.org`
    # and issue what they need: run after one another, they share one CA.
    folder = str(tmp_path / "certs")
    run("certs", "init", "--dir", folder)  # example.org, the examples' trust domain
    ca = (tmp_path / "certs" / "ca.pem").read_bytes()
    made = run("certs", "issue", "me", "--dir", folder)
    cert = (tmp_path / "certs" / "me.pem").read_bytes()
    assert "spiffe://example.org/agent/me: certificate" in made
    kept = run("certs", "init", "--trust-domain", "example.org", "--dir", folder)
    assert f"kept the CA for spiffe://example.org already in {folder}" in kept
    again = run("certs", "issue", "me", "--dir", folder)
    assert f"spiffe://example.org/agent/me: kept the certificate {folder}/me.pem" in again
    assert (tmp_path / "certs" / "ca.pem").read_bytes() == ca
    assert (tmp_path / "certs" / "me.pem").read_bytes() == cert
    forced = run("certs", "issue", "me", "--dir", folder, "--force")
    assert "kept" not in forced and (tmp_path / "certs" / "me.pem").read_bytes() != cert


def test_a_certificate_that_cannot_be_kept_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    pki.init_ca(folder)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    pki.issue(folder, "old", days=1, not_before=past)
    pki.init_ca(tmp_path / "other")
    pki.issue(tmp_path / "other", "stranger")
    for name in ("stranger.pem", "stranger-key.pem"):
        (folder / name).write_bytes((tmp_path / "other" / name).read_bytes())
    for name, why in [("old", "expired on"), ("stranger", "was not issued by the CA in")]:
        refused = CliRunner().invoke(cli, ["certs", "issue", name, "--dir", str(folder)])
        assert refused.exit_code == 2, refused.output
        assert why in refused.output and f"certs issue {name} --dir {folder} --force" in (
            " ".join(refused.output.split())
        )


def test_a_node_certificate_chains_to_the_ca_with_its_names(ca_dir: Path) -> None:
    leaf, ca_in_chain = x509.load_pem_x509_certificates((ca_dir / "alice.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    assert ca_in_chain == ca
    leaf.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/agent/alice"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    rogue = x509.load_pem_x509_certificate((ca_dir.parent / "rogue" / "ca.pem").read_bytes())
    with pytest.raises(InvalidSignature):  # same name as our CA, another key
        leaf.verify_directly_issued_by(rogue)


def test_bad_names_and_files_are_clear_errors(tmp_path: Path, ca_dir: Path) -> None:
    with pytest.raises(UsageError, match="trust domain"):
        pki.init_ca(tmp_path / "x", trust_domain="Not A Domain")
    with pytest.raises(UsageError, match="letters, digits"):
        pki.issue(ca_dir, "../evil")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        bad = tmp_path / "bad.pem"
        bad.write_text("hello")
        pki.describe(bad)
    with pytest.raises(ConfigError, match="trust bundle"):
        client_context(None, None, [tmp_path / "missing.pem"])


# Real handshakes on loopback


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[tuple[int, list[str]]]:
    """A one-connection-at-a-time TLS server on a thread, built on ``context``.
    Yields its port and, per connection, the caller's identity or why the
    handshake failed (the reason and OpenSSL's verify message)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with raw:
                raw.settimeout(10)
                try:
                    with context.wrap_socket(raw, server_side=True) as tls:
                        identity = identity_of(tls.getpeercert(binary_form=True) or b"")
                        seen.append(f"caller {identity}")
                        tls.sendall(f"{identity}\n".encode())
                except ssl.SSLCertVerificationError as exc:
                    seen.append(f"refused {exc.reason}: {exc.verify_message}")
                except ssl.SSLError as exc:
                    seen.append(f"refused {exc.reason}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        thread.join()
        listener.close()


async def connect(port: int, context: ssl.SSLContext, name: str = "localhost") -> str:
    """Connect, handshake and read the answer ("" when the server hung up)."""

    def blocking() -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                try:
                    return tls.recv(1024).decode().strip()
                except (ssl.SSLError, ConnectionError):
                    return ""

    return await asyncio.to_thread(blocking)


def node_client(folder: Path, name: str | None, trust: Path) -> ssl.SSLContext:
    if name is None:
        return client_context(None, None, [trust])
    return client_context(folder / f"{name}.pem", folder / f"{name}-key.pem", [trust])


async def test_mutual_tls_names_the_caller_and_refuses_the_rest(ca_dir: Path) -> None:
    trust = ca_dir / "ca.pem"
    server = server_context(ca_dir / "alice.pem", ca_dir / "alice-key.pem", [trust])
    rogue = ca_dir.parent / "rogue"
    callers = [
        node_client(ca_dir, "bob", trust),
        node_client(ca_dir, None, trust),
        client_context(rogue / "mallory.pem", rogue / "mallory-key.pem", [trust]),
        node_client(ca_dir, "carol", trust),
    ]
    with tls_server(server) as (port, seen):
        answers = [await connect(port, caller) for caller in callers]
    # Under TLS 1.3 a refused client finishes its handshake first, then is hung up on.
    assert answers == ["spiffe://example.org/agent/bob", "", "", ""]
    assert seen == [
        "caller spiffe://example.org/agent/bob",
        "refused PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "refused CERTIFICATE_VERIFY_FAILED: self-signed certificate in certificate chain",
        "refused CERTIFICATE_VERIFY_FAILED: certificate has expired",
    ]


async def test_our_client_refuses_a_server_whose_names_do_not_match(ca_dir: Path) -> None:
    trust = ca_dir / "ca.pem"
    server = server_context(ca_dir / "alice.pem", ca_dir / "alice-key.pem", [trust])
    with tls_server(server) as (port, _):
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            await connect(port, node_client(ca_dir, "bob", trust), name="peer.example.org")
        rogue_trust = ca_dir.parent / "rogue" / "ca.pem"
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await connect(port, node_client(ca_dir, "bob", rogue_trust))
