"""Discovery: peers' cards from real uvicorn servers over real mutual TLS.

Each fake peer is a tiny Starlette app served by the node's own transport on
a free loopback port with a certificate of the test CA. It records every
request (path, ``If-None-Match``, status), so caching is asserted where it
shows: on the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.certs import make_certs
from support.ports import free_port
from support.served import served

from agent_node import Workflow
from agent_node.a2a.peers.client import http_client
from agent_node.a2a.peers.directory import Directory
from agent_node.a2a.peers.discovery import (
    CARD_PATH,
    DEFAULT_MAX_AGE,
    LEGACY_CARD_PATH,
    MAX_CARD_BYTES,
    PeerUnavailable,
    fetch_card,
)
from agent_node.a2a.peers.signing import sign_card
from agent_node.a2a.server.app import create_app
from agent_node.a2a.server.card import MAX_AGE, CardDocument, build_card
from agent_node.cli.main import cli
from agent_node.config import NodeConfig, PeerConfig
from agent_node.errors import ConfigError
from agent_node.security.tls import client_context, server_context

WRITER = "spiffe://example.org/agent/writer"
MALLORY = "spiffe://example.org/agent/mallory"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA example.org: alice (us), writer, researcher, legacy, mallory; a rogue CA's eve."""
    folder = tmp_path_factory.mktemp("pki") / "certs"
    make_certs(folder, "alice", "writer", "researcher", "legacy", "mallory")
    make_certs(folder.parent / "rogue", "eve")
    return folder


def serving_as(certs: Path, name: str) -> ssl.SSLContext:
    return server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])


@asynccontextmanager
async def client(certs: Path, name: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
    tls = client_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    async with http_client(tls, timeout=5) as http:
        yield http


@dataclass
class Seen:
    path: str
    if_none_match: str | None
    status: int


@dataclass
class FakePeer:
    """What a peer serves at each path (everything else is 404), and what it saw."""

    url: str = ""  # set once it listens
    cards: dict[str, bytes] = field(default_factory=dict)
    etag: str | None = None
    cache_control: str | None = None
    status: int = 200
    #: When set, requests wait for it (to hold fetches in flight).
    gate: asyncio.Event | None = None
    seen: list[Seen] = field(default_factory=list)
    arrivals: int = 0

    def serve(self, card: Any, path: str = CARD_PATH) -> None:
        self.cards = {path: card if isinstance(card, bytes) else json.dumps(card).encode()}

    async def handle(self, request: Request) -> Response:
        self.arrivals += 1
        if self.gate is not None:
            await self.gate.wait()
        body = self.cards.get(request.url.path)
        condition = request.headers.get("if-none-match")
        headers = {
            k: v for k, v in (("etag", self.etag), ("cache-control", self.cache_control)) if v
        }
        if body is None:
            response = Response(status_code=404)
        elif self.etag is not None and condition == self.etag:
            response = Response(status_code=304, headers=headers)
        else:
            response = Response(body, self.status, headers, media_type="application/json")
        self.seen.append(Seen(request.url.path, condition, response.status_code))
        return response


@asynccontextmanager
async def peer(tls: ssl.SSLContext | None) -> AsyncIterator[FakePeer]:
    """A fake peer on ``127.0.0.1`` over ``tls`` (plain HTTP for None)."""
    fake = FakePeer()
    app = Starlette(routes=[Route("/{path:path}", fake.handle)])
    async with served(app, tls) as fake.url:
        try:
            yield fake
        finally:  # let held requests finish, or the server would wait for them forever
            if fake.gate is not None:
                fake.gate.set()


def a_closed_port() -> str:
    return f"https://127.0.0.1:{free_port()}"


class Text(BaseModel):
    text: str = ""


def our_card(certs: Path, url: str, skills: dict[str, list[str]]) -> dict[str, Any]:
    """A card as an agent-node serves it: 1.0 plus the 0.3 fields, mTLS declared."""
    tls = {"cert": "c.pem", "key": "k.pem", "trust": ["ca.pem"]}
    config = NodeConfig.model_validate(
        {"name": "writer", "public_url": url, "tls": tls, "base_dir": certs}
    )
    workflows = {}
    for skill_id in skills:
        wf = Workflow(skill_id, description=f"Does {skill_id}.")
        wf.state(Text)

        @wf.step
        async def work(s: Text) -> dict[str, Any]:
            return {}

        workflows[skill_id] = wf.compile()
    card = build_card(config, workflows)
    for skill in card["skills"]:
        skill["tags"] = skills[skill["id"]]
    return card


def v03_card(url: str) -> dict[str, Any]:
    return {
        "name": "legacy",
        "description": "An A2A 0.3 agent.",
        "url": f"{url}/rpc",
        "version": "0.1.0",
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "capabilities": {"streaming": False, "stateTransitionHistory": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "securitySchemes": {"mtls": {"type": "mutualTLS"}},
        "security": [{"mtls": []}],
        "skills": [
            {"id": "summarize", "name": "Summarize", "description": "Short.", "tags": ["text"]}
        ],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- fetch_card --------------------------------------------------------------


async def test_our_own_dual_card_is_read_as_1_0(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(our_card(certs, fake.url, {"write": ["text"]}))
        fake.etag, fake.cache_control = '"abc"', "public, max-age=120"
        found = await fetch_card(http, fake.url + "/", name="writer", expected_identity=WRITER)
    assert found.version == "1.0" and found.endpoint == f"{fake.url}/a2a"
    assert found.identity == WRITER and found.signed_by is None
    assert found.name == "writer" and found.base_url == fake.url
    assert found.card_url == fake.url + CARD_PATH and found.etag == '"abc"'
    assert found.expires_at == pytest.approx(found.fetched_at + 120)
    assert found.skills() == ["write"]
    assert found.has(skill="write", tag="text") and not found.has(skill="write", tag="web")
    assert found.card["securitySchemes"]["mtls"]["mtlsSecurityScheme"]
    assert [s.path for s in fake.seen] == [CARD_PATH]


async def test_a_real_node_card_endpoint_is_cached_and_revalidated(certs: Path) -> None:
    """Against the node's own card app: its ETag and max-age drive the cache."""
    seen: list[tuple[str, int]] = []
    clock = Clock()

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def recorded(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.append((scope["path"], message["status"]))
            await send(message)

        await app(scope, receive, recorded)

    async with served(counting, serving_as(certs, "writer")) as url, client(certs) as http:
        # The card names its URL, known once the server listens; `counting` calls it.
        app = create_app(CardDocument.of(our_card(certs, url, {"write": ["text"]})))
        directory = Directory(
            [PeerConfig(name="writer", url=url, identity=WRITER)], http, clock=clock
        )
        first = await directory.card("writer")
        assert first.version == "1.0" and first.etag is not None
        assert first.expires_at == clock.now + MAX_AGE
        clock.now += MAX_AGE - 1
        assert await directory.card("writer") is first
        clock.now += 2
        assert (await directory.card("writer")).card == first.card
    assert seen == [(CARD_PATH, 200), (CARD_PATH, 304)]


async def test_a_0_3_card_at_the_legacy_path_is_converted_and_spoken_as_0_3(
    certs: Path,
) -> None:
    async with peer(serving_as(certs, "legacy")) as fake, client(certs) as http:
        fake.serve(v03_card(fake.url), LEGACY_CARD_PATH)
        found = await fetch_card(http, fake.url)
    assert [(s.path, s.status) for s in fake.seen] == [(CARD_PATH, 404), (LEGACY_CARD_PATH, 200)]
    assert found.version == "0.3" and found.endpoint == f"{fake.url}/rpc"
    assert found.card_url == fake.url + LEGACY_CARD_PATH
    assert found.card["supportedInterfaces"] == [
        {"url": f"{fake.url}/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
    ]
    assert found.card["securitySchemes"] == {"mtls": {"mtlsSecurityScheme": {}}}
    assert "url" not in found.card and found.name == fake.url
    assert found.expires_at == pytest.approx(found.fetched_at + DEFAULT_MAX_AGE)


def interfaces(*entries: tuple[str, str]) -> list[dict[str, str]]:
    return [
        {
            "url": f"/{binding}/{v}",  # on the card's own origin
            "protocolBinding": binding,
            "protocolVersion": v,
        }
        for binding, v in entries
    ]


def without(card: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in card.items() if k != key}


#: A plain A2A 1.0 card.
BASE: dict[str, Any] = {
    "name": "base",
    "description": "An A2A 1.0 agent.",
    "version": "1.0.0",
    "supportedInterfaces": interfaces(("JSONRPC", "1.0")),
    "capabilities": {},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [{"id": "echo", "name": "Echo", "description": "Echoes.", "tags": []}],
}


async def test_1_0_is_spoken_when_offered_even_if_not_preferred(certs: Path) -> None:
    card = BASE | {
        "supportedInterfaces": interfaces(("GRPC", "1.0"), ("JSONRPC", "0.3"), ("JSONRPC", "1.0"))
    }
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(card)
        found = await fetch_card(http, fake.url)
    assert found.version == "1.0" and found.endpoint == f"{fake.url}/JSONRPC/1.0"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>not json</html>", "the card is not JSON"),
        (b"[1, 2]", "the card is a JSON list, not an object"),
        (without(BASE, "skills"), "not a valid Agent Card: skills: Field required"),
        (
            BASE | {"supportedInterfaces": [{"url": "u", "protocolBinding": "JSONRPC"}]},
            "supportedInterfaces[0].protocolVersion: Field required",
        ),
        (
            BASE | {"skills": [{"id": "s", "name": "S", "description": "d", "tags": "x"}]},
            "skills[0].tags: Input should be a valid list",
        ),
        (
            without(BASE, "supportedInterfaces") | {"protocolVersion": "0.3.0"},
            "supportedInterfaces[0].url: Input should be a valid string",
        ),
        (
            BASE | {"supportedInterfaces": interfaces(("GRPC", "0.3"), ("JSONRPC", "2.0"))},
            "offers no JSON-RPC interface of A2A 1.0 or 0.3, nor HTTP+JSON or gRPC of 1.0",
        ),
        (b" " * (MAX_CARD_BYTES + 1), f"the card is over {MAX_CARD_BYTES} bytes"),
        (b"[" * 100_000, "the card is nested too deeply"),
    ],
)
async def test_a_malformed_card_is_refused_naming_the_problem(
    certs: Path, body: Any, reason: str
) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(body)
        with pytest.raises(PeerUnavailable) as refused:
            await fetch_card(http, fake.url, name="writer")
    message = str(refused.value)
    assert message.startswith(f"peer 'writer' ({fake.url}{CARD_PATH}): "), message
    assert reason in message


async def test_errors_and_missing_cards_name_the_status(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        with pytest.raises(PeerUnavailable, match=f"no Agent Card at {CARD_PATH} or"):
            await fetch_card(http, fake.url)
        fake.serve(BASE)
        fake.status = 503
        with pytest.raises(PeerUnavailable, match="HTTP 503"):
            await fetch_card(http, fake.url)
        fake.status = 302
        with pytest.raises(PeerUnavailable, match="HTTP 302 \\(redirects are not followed\\)"):
            await fetch_card(http, fake.url)


async def test_a_server_with_another_identity_is_refused_precisely(certs: Path) -> None:
    async with peer(serving_as(certs, "mallory")) as fake, client(certs) as http:
        fake.serve(BASE)
        with pytest.raises(PeerUnavailable) as refused:
            await fetch_card(http, fake.url, name="writer", expected_identity=WRITER)
        assert str(refused.value) == (
            f"peer 'writer' ({fake.url}{CARD_PATH}): the server presented {MALLORY},"
            f" expected {WRITER}"
        )
        assert refused.value.permanent
        assert fake.seen == []  # refused at the handshake: not even the GET was sent
        # Without an expectation, whoever the CA vouches for is accepted, and named.
        assert (await fetch_card(http, fake.url)).identity == MALLORY


async def test_a_server_our_ca_did_not_issue_is_refused(certs: Path) -> None:
    rogue = certs.parent / "rogue"
    tls = server_context(rogue / "eve.pem", rogue / "eve-key.pem", [certs / "ca.pem"])
    async with peer(tls) as fake, client(certs) as http:
        fake.serve(BASE)
        with pytest.raises(PeerUnavailable, match=r"cannot fetch the card: .*CERTIFICATE_VERIFY"):
            await fetch_card(http, fake.url)
    assert fake.seen == []


async def test_plain_http_has_no_identity_and_fails_an_expectation() -> None:
    async with peer(None) as fake, http_client(None, timeout=5) as http:
        fake.serve(BASE)
        assert (await fetch_card(http, fake.url)).identity is None
        with pytest.raises(PeerUnavailable, match="presented no certificate \\(plain HTTP\\)"):
            await fetch_card(http, fake.url, expected_identity=WRITER)
        assert len(fake.seen) == 1  # only the fetch without an expectation


async def test_a_signed_card_names_its_signer_and_a_tampered_one_is_refused(
    certs: Path,
) -> None:
    signed = sign_card(BASE, certs / "writer-key.pem", certs / "writer.pem")
    trust = [certs / "ca.pem"]
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(signed)
        assert (await fetch_card(http, fake.url, trust=trust)).signed_by == WRITER
        fake.serve(signed | {"description": "Something else entirely."})
        with pytest.raises(PeerUnavailable, match="invalid card signature: signature 1: does not"):
            await fetch_card(http, fake.url, trust=trust)


# --- card steering: the configured origin is authoritative -----------------


def pointing_to(*urls: str) -> dict[str, Any]:
    return BASE | {
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"} for url in urls
        ]
    }


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_card_pointing_to_another_origin_is_refused_for_good(
    certs: Path, scheme: str
) -> None:
    elsewhere = a_closed_port().replace("https", scheme)
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(pointing_to(f"{elsewhere}/a2a"))
        directory = Directory([PeerConfig(name="writer", url=fake.url, identity=WRITER)], http)
        with pytest.raises(PeerUnavailable) as refused:
            await directory.card("writer")
    port = elsewhere.rsplit(":", 1)[1]
    assert refused.value.permanent and refused.value.peer == "writer"
    assert refused.value.reason == (
        f"its card points to another origin (127.0.0.1:{port} over {scheme}) than the"
        " peer's URL; list it under the peer's endpoints: to allow it"
    )


async def test_plain_http_on_the_peers_own_host_and_port_is_another_origin(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(pointing_to(fake.url.replace("https:", "http:") + "/a2a"))
        with pytest.raises(PeerUnavailable, match="over http\\) than the peer's URL"):
            await fetch_card(http, fake.url, name="writer")


async def test_an_origin_listed_under_endpoints_is_used(certs: Path) -> None:
    async with (
        peer(serving_as(certs, "writer")) as fake,
        peer(serving_as(certs, "writer")) as second,
        client(certs) as http,
    ):
        fake.serve(pointing_to(f"{second.url}/a2a"))
        listed = PeerConfig(name="writer", url=fake.url, endpoints=[second.url])
        found = await Directory([listed], http).card("writer")
    assert found.endpoint == f"{second.url}/a2a" and found.base_url == fake.url


async def test_a_refused_preferred_interface_gives_way_to_one_on_the_peers_origin(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = a_closed_port()
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(pointing_to(f"{elsewhere}/a2a", f"{fake.url}/a2a"))
        with caplog.at_level(logging.WARNING, "agent_node.a2a.peers.discovery"):
            found = await fetch_card(http, fake.url, name="writer")
    assert found.endpoint == f"{fake.url}/a2a"
    assert f"peer 'writer': its card's interface {elsewhere}/a2a is not on an allowed" in (
        caplog.text
    )


# --- Directory --------------------------------------------------------------


async def test_the_directory_caches_while_fresh_and_revalidates_with_the_etag(
    certs: Path,
) -> None:
    clock = Clock()
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(BASE)
        fake.etag, fake.cache_control = '"v1"', "max-age=60"
        directory = Directory(
            [PeerConfig(name="writer", url=fake.url, identity=WRITER)], http, clock=clock
        )
        first = await directory.card("writer")
        clock.now += 59
        assert await directory.card("writer") is first
        assert [(s.if_none_match, s.status) for s in fake.seen] == [(None, 200)]

        clock.now += 2
        again = await directory.card("writer")
        assert [(s.if_none_match, s.status) for s in fake.seen] == [(None, 200), ('"v1"', 304)]
        assert again.card == first.card and again.etag == '"v1"'
        assert (again.fetched_at, again.expires_at) == (clock.now, clock.now + 60)
        assert await directory.card("writer") is again

        fake.serve(BASE | {"name": "writer v2"})
        fake.etag = '"v2"'
        clock.now += 61
        changed = await directory.card("writer")
        assert changed.card["name"] == "writer v2" and changed.etag == '"v2"'
        assert [s.status for s in fake.seen] == [200, 304, 200]

        directory.forget("writer")
        await directory.card("writer")
        assert fake.seen[-1].if_none_match is None and len(fake.seen) == 4


async def test_no_store_means_every_use_refetches(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(BASE)
        fake.cache_control = "no-store"
        directory = Directory([PeerConfig(name="writer", url=fake.url)], http)
        await directory.card("writer")
        await directory.card("writer")
    assert len(fake.seen) == 2


async def test_concurrent_asks_share_one_fetch(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        fake.serve(BASE)
        fake.gate = asyncio.Event()
        directory = Directory([PeerConfig(name="writer", url=fake.url)], http)
        waiters = [asyncio.create_task(directory.card("writer")) for _ in range(10)]
        while fake.arrivals == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # every waiter is parked on the one fetch now
        waiters[0].cancel()  # one caller giving up does not cancel the others' fetch
        fake.gate.set()
        cards = await asyncio.gather(*waiters[1:])
    assert fake.arrivals == 1 and len(fake.seen) == 1
    assert all(card is cards[0] for card in cards)
    assert waiters[0].cancelled()


async def test_find_by_skill_or_tag_skips_unreachable_peers(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = a_closed_port()
    async with (
        peer(serving_as(certs, "writer")) as writer,
        peer(serving_as(certs, "researcher")) as researcher,
        client(certs) as http,
    ):
        writer.serve(our_card(certs, writer.url, {"write": ["text", "prose"]}))
        researcher.serve(our_card(certs, researcher.url, {"research": ["web", "text"]}))
        directory = Directory(
            [
                PeerConfig(name="dead", url=dead),
                PeerConfig(name="writer", url=writer.url, identity=WRITER),
                PeerConfig(name="researcher", url=researcher.url),
            ],
            http,
        )
        with caplog.at_level(logging.WARNING, "agent_node.a2a.peers.discovery"):
            assert (await directory.find(skill="research")).name == "researcher"
        assert "skipped peer 'dead'" in caplog.text
        assert (await directory.find(tag="text")).name == "writer"  # configuration order
        assert (await directory.find(skill="research", tag="text")).name == "researcher"
        with pytest.raises(PeerUnavailable) as none:
            await directory.find(skill="write", tag="web")
        assert str(none.value).startswith(
            "no configured peer offers skill 'write' and tag 'web'; unreachable: dead ("
        )
        with pytest.raises(ConfigError, match="takes a skill id or a tag"):
            await directory.find()
        results = await directory.all()
        assert [type(r).__name__ for r in results] == ["PeerUnavailable", "PeerCard", "PeerCard"]
    assert len(writer.seen) == 1 and len(researcher.seen) == 1  # the rest came from the cache


async def test_an_unknown_peer_name_lists_the_known_ones(certs: Path) -> None:
    async with client(certs) as http:
        directory = Directory([PeerConfig(name="writer", url="https://127.0.0.1:1")], http)
        with pytest.raises(ConfigError, match="no peer named 'writr'; configured peers: writer"):
            await directory.card("writr")
        with pytest.raises(ConfigError, match="configured peers: none"):
            await Directory([], http).card("writer")


async def test_a_failed_fetch_is_not_cached(certs: Path) -> None:
    async with peer(serving_as(certs, "writer")) as fake, client(certs) as http:
        directory = Directory([PeerConfig(name="writer", url=fake.url)], http)
        with pytest.raises(PeerUnavailable):
            await directory.card("writer")
        fake.serve(BASE)
        assert (await directory.card("writer")).card["name"] == "base"


# --- the command line ---------------------------------------------------------


async def invoke(*args: str) -> Result:
    """The CLI in a worker thread: it runs its own event loop while ours serves the peers."""
    # Wide, so that no table cell wraps onto a second line.
    runner = CliRunner(env={"COLUMNS": "400"})
    return await asyncio.to_thread(runner.invoke, cli, list(args), catch_exceptions=False)


def config_file(tmp_path: Path, certs: Path, peers: list[dict[str, str]]) -> str:
    tls = {
        "cert": str(certs / "alice.pem"),
        "key": str(certs / "alice-key.pem"),
        "trust": [str(certs / "ca.pem")],
    }
    path = tmp_path / "agent-node.yaml"
    path.write_text(json.dumps({"name": "alice", "tls": tls, "peers": peers}))
    return str(path)


async def test_the_peers_command_shows_every_peer(certs: Path, tmp_path: Path) -> None:
    dead = a_closed_port()
    async with (
        peer(serving_as(certs, "writer")) as writer,
        peer(serving_as(certs, "legacy")) as legacy,
    ):
        signed = sign_card(
            our_card(certs, writer.url, {"write": ["text"]}),
            certs / "writer-key.pem",
            certs / "writer.pem",
        )
        writer.serve(signed)
        legacy.serve(v03_card(legacy.url), LEGACY_CARD_PATH)
        peers = [
            {"name": "writer", "url": writer.url, "identity": WRITER},
            {"name": "legacy", "url": legacy.url},
            {"name": "dead", "url": dead},
        ]
        result = await invoke("peers", "--config", config_file(tmp_path, certs, peers))
    assert result.exit_code == 1, result.output  # one peer is unreachable
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert "✓" in rows["writer"] and "A2A 1.0" in rows["writer"] and "write" in rows["writer"]
    assert WRITER in rows["writer"] and "✓ by that identity" in rows["writer"]  # signed too
    assert "✓" in rows["legacy"] and "A2A 0.3" in rows["legacy"] and "summarize" in rows["legacy"]
    assert f"{dead} │ ✗ cannot fetch the card" in rows["dead"]


async def test_peers_discover_prints_a_summary_or_the_card(
    certs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no agent-node.yaml here: flags only
    tls = ["--cert-dir", str(certs), "--identity", "alice"]
    async with peer(serving_as(certs, "writer")) as fake:
        fake.serve(our_card(certs, fake.url, {"write": ["text"]}))
        summary = await invoke("peers", "discover", fake.url, *tls, "--expect-identity", WRITER)
        as_json = await invoke("peers", "discover", fake.url, *tls, "--json")
        wrong = await invoke("peers", "discover", fake.url, *tls, "--expect-identity", MALLORY)
        untrusted = await invoke("peers", "discover", fake.url)
    assert summary.exit_code == 0, summary.output
    assert f"{fake.url}/a2a (A2A 1.0, JSON-RPC)" in summary.stdout
    assert WRITER in summary.stdout and "write: write [text]" in summary.stdout
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["name"] == "writer"
    assert wrong.exit_code == 1 and wrong.stderr.count("\n") == 1
    assert wrong.stderr == (
        f"error: peer '{fake.url}' ({fake.url}{CARD_PATH}): the server presented {WRITER},"
        f" expected {MALLORY}\n"
    )
    # Without our certificates the dev CA is unknown: the handshake fails, clearly.
    assert untrusted.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


async def test_peers_usage_mistakes_exit_2(tmp_path: Path) -> None:
    missing = await invoke("peers", "--config", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr
    half = await invoke("peers", "discover", "https://127.0.0.1:1", "--identity", "alice")
    assert half.exit_code == 2 and "--cert-dir and --identity go together" in half.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("name: lonely\n")
    none = await invoke("peers", "--config", str(empty))
    assert none.exit_code == 0 and "no peers configured" in none.stdout
