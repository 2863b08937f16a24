"""Which card interface a peer is called at: the configured origin, or one
its configuration allows; never where the card alone says."""

from __future__ import annotations

from typing import Any

import pytest

from agent_node.a2a.peers.endpoints import (
    NoInterface,
    Origins,
    choose,
    dialect,
    in_words,
    origin_of,
    same_origin,
    spoken,
)
from agent_node.config import PeerConfig

CARD = "https://b.example:8443/.well-known/agent-card.json"
B = Origins.of("https://b.example:8443")


def jsonrpc(url: str, version: str = "1.0", binding: str = "JSONRPC") -> dict[str, Any]:
    return {"url": url, "protocolBinding": binding, "protocolVersion": version}


def test_origins_make_default_ports_explicit_and_ignore_case() -> None:
    assert origin_of("https://B.Example/a2a") == ("https", "b.example", 443)
    assert origin_of("http://[::1]:8080/x") == ("http", "::1", 8080)
    assert origin_of("https://b.example:99999/") is None  # not a port
    assert origin_of("ftp://b.example/") is None and origin_of("/relative") is None
    assert Origins.of("https://b.example").allows("https://B.EXAMPLE:443/a2a")
    assert in_words(origin_of("http://[::1]:8080/x")) == "[::1]:8080 over http"


def test_an_interface_on_the_configured_origin_is_used_relative_or_absolute() -> None:
    assert choose([jsonrpc("https://b.example:8443/a2a")], CARD, B).endpoint == (
        "https://b.example:8443/a2a"
    )
    choice = choose([jsonrpc("/rpc", "0.3")], CARD, B)
    assert (choice.version, choice.endpoint, choice.passed_over) == (
        "0.3",
        "https://b.example:8443/rpc",
        (),
    )


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://evil.example:8443/a2a",  # another host
        "https://b.example:9443/a2a",  # another port
        "http://b.example:8443/a2a",  # plain HTTP on the same host and port
        "https://b.example/a2a",  # the default port is another port
        "https://10.0.0.7:8443/a2a",
    ],
)
def test_an_interface_elsewhere_is_refused(elsewhere: str) -> None:
    with pytest.raises(NoInterface) as refused:
        choose([jsonrpc(elsewhere)], CARD, B)
    assert refused.value.refused == elsewhere


def test_an_allow_listed_origin_is_used() -> None:
    allowed = Origins.of("https://b.example:8443", ["https://b-2.example", "http://b.example:80"])
    assert choose([jsonrpc("https://b-2.example/a2a")], CARD, allowed).endpoint == (
        "https://b-2.example/a2a"
    )
    assert choose([jsonrpc("http://b.example/a2a")], CARD, allowed).endpoint == (
        "http://b.example/a2a"
    )
    with pytest.raises(NoInterface):  # the list allows origins, not hosts
        choose([jsonrpc("https://b-2.example:8443/a2a")], CARD, allowed)


def test_when_the_preferred_interface_is_refused_the_configured_origin_comes_first() -> None:
    allowed = Origins.of("https://b.example:8443", ["https://b-2.example"])
    interfaces = [
        jsonrpc("https://evil.example/a2a"),
        jsonrpc("https://b-2.example/a2a"),
        jsonrpc("https://b.example:8443/a2a"),
    ]
    choice = choose(interfaces, CARD, allowed)
    assert choice.endpoint == "https://b.example:8443/a2a"
    assert choice.passed_over == ("https://evil.example/a2a",)
    # An allowed preferred interface is the card's to choose.
    assert choose(interfaces[1:], CARD, allowed).endpoint == "https://b-2.example/a2a"


def test_a_lower_version_on_an_allowed_origin_beats_a_refused_higher_one() -> None:
    interfaces = [jsonrpc("https://evil.example/a2a"), jsonrpc("/rpc", "0.3.0")]
    choice = choose(interfaces, CARD, B)
    assert (choice.version, choice.endpoint) == ("0.3", "https://b.example:8443/rpc")
    assert choice.passed_over == ("https://evil.example/a2a",)


def test_1_0_is_preferred_and_grpc_comes_last() -> None:
    grpc = jsonrpc("b.example:8443", binding="GRPC")
    interfaces = [grpc, jsonrpc("/v03", "0.3"), jsonrpc("/v1")]
    assert choose(interfaces, CARD, B).endpoint == "https://b.example:8443/v1"
    rest = jsonrpc("/rest", binding="HTTP+JSON")
    assert choose([grpc, rest], CARD, B).binding == "HTTP+JSON"
    with pytest.raises(NoInterface) as none:
        choose([jsonrpc("/v2", "2.0"), jsonrpc("b.example:8443", "0.3", "GRPC")], CARD, B)
    assert none.value.refused is None  # gRPC of 0.3 is not spoken
    with pytest.raises(NoInterface):  # HTTP+JSON of 0.3 had other paths: not spoken
        choose([jsonrpc("/v03rest", "0.3", "HTTP+JSON")], CARD, B)


def test_a_grpc_target_is_called_over_tls_when_the_card_came_over_https() -> None:
    only = [jsonrpc("b.example:8443", binding="GRPC")]
    choice = choose(only, CARD, B)
    assert (choice.binding, choice.endpoint) == ("GRPC", "grpcs://b.example:8443")
    plain = "http://b.example:8080/.well-known/agent-card.json"
    choice = choose([jsonrpc("b.example:8080", binding="GRPC")], plain, Origins.of(plain))
    assert choice.endpoint == "grpc://b.example:8080"
    # Written as a URL: grpc(s) kept, http(s) read as grpc(s).
    for written in ["grpcs://b.example:8443", "https://b.example:8443"]:
        assert choose([jsonrpc(written, binding="GRPC")], CARD, B).endpoint == (
            "grpcs://b.example:8443"
        )


def test_a_grpc_port_of_its_own_must_be_listed() -> None:
    only = [jsonrpc("b.example:50051", binding="GRPC")]
    with pytest.raises(NoInterface) as refused:
        choose(only, CARD, B)
    assert refused.value.refused == "grpcs://b.example:50051"
    listed = Origins.of("https://b.example:8443", ["grpcs://b.example:50051"])
    assert choose(only, CARD, listed).endpoint == "grpcs://b.example:50051"
    # Listing TLS does not allow it in the clear, nor another port.
    plain = [jsonrpc("grpc://b.example:50051", binding="GRPC")]
    with pytest.raises(NoInterface):
        choose(plain, CARD, listed)
    with pytest.raises(NoInterface):
        choose([jsonrpc("b.example:50052", binding="GRPC")], CARD, listed)


def test_json_rpc_is_preferred_and_http_json_taken_when_it_is_all() -> None:
    rest = jsonrpc("/rest", "1.0.1", "HTTP+JSON")
    first = choose([rest, jsonrpc("/v03", "0.3")], CARD, B)
    assert (first.binding, first.version, first.endpoint) == (
        "JSONRPC",
        "0.3",
        "https://b.example:8443/v03",
    )
    only = choose([jsonrpc("/grpc", binding="GRPC"), rest], CARD, B)
    assert (only.binding, only.version, only.endpoint) == (
        "HTTP+JSON",
        "1.0",
        "https://b.example:8443/rest",
    )
    with pytest.raises(NoInterface) as refused:  # another origin is refused for it too
        choose([jsonrpc("https://evil.example/rest", binding="HTTP+JSON")], CARD, B)
    assert refused.value.refused == "https://evil.example/rest"


def test_a_rows_dialect_names_the_binding_when_it_is_not_json_rpc() -> None:
    assert dialect("JSONRPC", "1.0") == "1.0" and dialect("JSONRPC", "0.3") == "0.3"
    assert dialect("HTTP+JSON", "1.0") == "HTTP+JSON 1.0" and dialect("GRPC", "1.0") == "GRPC 1.0"
    spoken_ones = [("JSONRPC", "1.0"), ("JSONRPC", "0.3"), ("HTTP+JSON", "1.0"), ("GRPC", "1.0")]
    for binding, version in spoken_ones:
        assert spoken(dialect(binding, version)) == (binding, version)  # type: ignore[arg-type]
    assert spoken("") == ("JSONRPC", "1.0")  # a row written before it was sent


def test_endpoints_are_origins() -> None:
    listed = ["https://b-2.example:8443/", "grpcs://b.example:50051"]
    peer = PeerConfig(name="b", url="https://b.example", endpoints=listed)
    assert peer.endpoints == listed
    for wrong in ["https://b-2.example/a2a", "b-2.example", "ftp://b-2.example"]:
        with pytest.raises(ValueError, match="is not an origin"):
            PeerConfig(name="b", url="https://b.example", endpoints=[wrong])


LOCAL = Origins.of("https://localhost:26470")


@pytest.mark.parametrize(
    "loopback",
    [
        "https://127.0.0.1:26470/a2a",  # what `init` writes on the card
        "https://127.8.9.10:26470/a2a",
        "https://[::1]:26470/a2a",
        "https://LOCALHOST:26470/a2a",
    ],
)
def test_loopback_names_and_addresses_are_one_host(loopback: str) -> None:
    """`peers discover https://localhost:PORT` of a card that says 127.0.0.1."""
    card = "https://localhost:26470/.well-known/agent-card.json"
    assert choose([jsonrpc(loopback)], card, LOCAL).endpoint == loopback
    assert Origins.of("https://127.0.0.1:26470").allows(loopback.replace("127.8.9.10", "localhost"))
    assert same_origin(origin_of(loopback), ("https", "localhost", 26470))


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://127.0.0.1:26471/a2a",  # another port
        "http://127.0.0.1:26470/a2a",  # plain HTTP
        "https://10.0.0.7:26470/a2a",  # off this machine
        "https://b.example:26470/a2a",
        "https://localhost.b.example:26470/a2a",  # a name that only starts like it
        "https://0.0.0.0:26470/a2a",  # unspecified, not loopback
    ],
)
def test_loopback_is_not_a_wildcard(elsewhere: str) -> None:
    with pytest.raises(NoInterface):
        choose([jsonrpc(elsewhere)], "https://localhost:26470/", LOCAL)


def test_a_routable_peer_may_not_be_sent_to_loopback_nor_loopback_elsewhere() -> None:
    """Loopback is one host only when both sides are loopback."""
    assert not B.allows("https://127.0.0.1:8443/a2a")
    assert not B.allows("https://localhost:8443/a2a")
    assert not Origins.of("https://10.0.0.7:8443").allows("https://127.0.0.1:8443/a2a")
    assert not same_origin(("https", "b.example", 8443), ("https", "localhost", 8443))
    assert not same_origin(None, None)
