"""Which nodes ``agent-node ui`` shows, and which node a delegation went to."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node.config import TlsSettings
from agent_node.errors import ConfigError
from agent_node.ui.targets import build_network, same_node

TLS = TlsSettings(cert="ui.pem", key="ui-key.pem", trust=["ca.pem"])


def test_loopback_names_are_one_host() -> None:
    assert same_node("https://localhost:8502/a2a", "https://127.0.0.1:8502")
    assert same_node("http://[::1]:80/x", "http://localhost")
    assert not same_node("https://127.0.0.1:8502", "http://127.0.0.1:8502")
    assert not same_node("https://127.0.0.1:8502", "https://127.0.0.1:8503")
    assert not same_node("https://example.org:8502", "https://127.0.0.1:8502")
    assert not same_node("https://127.0.0.1:x", "https://127.0.0.1:1")


def write(folder: Path, name: str, port: int, peers: dict[str, int], tls: bool = False) -> Path:
    lines = [f"name: {name}", f"listen: {{host: 127.0.0.1, port: {port}}}"]
    if tls:
        lines.append("tls: {cert: n.pem, key: n-key.pem, trust: [ca.pem]}")
    if peers:
        lines.append("peers:")
        lines += [f"  - {{name: {p}, url: 'https://127.0.0.1:{q}'}}" for p, q in peers.items()]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_configuration_brings_its_peers_and_no_node_comes_twice(tmp_path: Path) -> None:
    a = write(tmp_path, "a", 9001, {"b": 9002})
    b = write(tmp_path, "b", 9002, {"c": 9003})
    network = build_network([a, b], ["extra=http://127.0.0.1:9009/", "https://localhost:9003"], TLS)
    assert {k: t.url for k, t in network.targets.items()} == {
        "a": "https://127.0.0.1:9001",  # served with --cert-dir, as the UI is given one
        "b": "https://127.0.0.1:9002",
        "c": "https://127.0.0.1:9003",
        "extra": "http://127.0.0.1:9009",
    }
    assert network.tls is not None and network.tls[0] == Path("ui.pem")
    assert network.find("https://localhost:9002/a2a", None) is network.targets["b"]
    assert network.find(None, "c") is network.targets["c"]
    assert network.find("https://127.0.0.1:9999/a2a", "nobody") is None


def test_a_peer_of_a_configuration_is_the_operator_s_only_when_the_operator_names_it(
    tmp_path: Path,
) -> None:
    a = write(tmp_path, "a", 9001, {"b": 9002, "c": 9003, "e": 9005})
    b = write(tmp_path, "b", 9002, {})
    network = build_network([a, b], ["https://localhost:9003"], TLS)
    peers = {key: target.peer for key, target in network.targets.items()}
    assert peers == {"a": False, "b": False, "c": False, "e": True}


def test_the_first_configuration_s_certificate_is_the_ui_s(tmp_path: Path) -> None:
    a = write(tmp_path, "a", 9001, {}, tls=True)
    network = build_network([a], [], None)
    assert network.tls == (tmp_path / "n.pem", tmp_path / "n-key.pem", [tmp_path / "ca.pem"])
    assert network.targets["a"].url == "https://127.0.0.1:9001"


def test_two_nodes_with_one_name_keep_both(tmp_path: Path) -> None:
    network = build_network([], ["n=http://127.0.0.1:1", "n=http://127.0.0.1:2"], None)
    assert list(network.targets) == ["n", "n-2"]


@pytest.mark.parametrize(
    ("peers", "message"),
    [
        ([], "no nodes to show"),
        (["https://127.0.0.1:1"], "speak(s) HTTPS: give the UI a client certificate"),
        (["ftp://127.0.0.1"], "give an http:// or https:// URL"),
        (["http://127.0.0.1:port"], "not a URL"),
        (["a/b=http://127.0.0.1:1"], "a name is letters, digits"),
    ],
)
def test_what_cannot_be_shown_is_said(peers: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_network([], peers, None)


def test_a_node_on_a_free_port_needs_its_url(tmp_path: Path) -> None:
    free = write(tmp_path, "f", 0, {})
    with pytest.raises(ConfigError, match="listens on a free port"):
        build_network([free], [], None)
