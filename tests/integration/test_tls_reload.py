"""Certificates rotate without a restart (:mod:`agent_node.security.tls_reload`).

Real files, real handshakes: a node served as ``agent-node serve`` in a
subprocess whose files are swapped as a Kubernetes secret volume swaps
them (its ``..data`` symlink), and contexts of the module served and
called in this process. New connections get the new files; open ones keep
theirs; a set that is not whole and sound never replaces a good one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.fake_peer import FakePeer
from support.nodes import serving_config
from support.served import served
from support.tls import caller_context

from agent_node.a2a.peers.client import http_client
from agent_node.config import NodeConfig, TlsSettings
from agent_node.security import pki
from agent_node.security.tls import client_context, server_context
from agent_node.security.tls_reload import calling, serving, watched

#: Seconds between looks at the files, here (5 in use).
INTERVAL = 0.2
V10 = {"A2A-Version": "1.0"}
OPS = "spiffe://example.org/agent/ops"


@dataclass
class Live:
    """TLS files as a Kubernetes secret volume holds them: ``tls.crt``,
    ``tls.key`` and ``ca.crt`` point through the ``..data`` symlink at a
    folder holding one version; :meth:`publish` swaps it at once."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "tls.crt"

    @property
    def key(self) -> Path:
        return self.folder / "tls.key"

    @property
    def trust(self) -> Path:
        return self.folder / "ca.crt"

    def publish(self, cert: bytes, key: bytes, trust: bytes) -> None:
        version = self.folder / f"..{uuid.uuid4().hex}"
        version.mkdir(parents=True)
        for name, data in (("tls.crt", cert), ("tls.key", key), ("ca.crt", trust)):
            (version / name).write_bytes(data)
        staged = self.folder / "..data_tmp"
        os.symlink(version.name, staged)
        os.replace(staged, self.folder / "..data")
        for name in ("tls.crt", "tls.key", "ca.crt"):
            if not (self.folder / name).is_symlink():
                os.symlink(f"..data/{name}", self.folder / name)


def issued(ca: Path, name: str, **options: Any) -> tuple[bytes, bytes]:
    """A new certificate (chain) and key for ``name`` from the CA in ``ca``."""
    files = pki.issue(ca, name, force=True, **options)
    return files.cert.read_bytes(), files.key.read_bytes()


def serial_of(pem_or_der: bytes) -> int:
    if pem_or_der.startswith(b"-----"):
        return x509.load_pem_x509_certificates(pem_or_der)[0].serial_number
    return x509.load_der_x509_certificate(pem_or_der).serial_number


async def handshake(
    port: int, context: ssl.SSLContext, host: str = "localhost", alpn: list[str] | None = None
) -> tuple[int, str | None]:
    """What a new connection's handshake gave: the server certificate's
    serial and the protocol ALPN chose."""
    if alpn:
        context.set_alpn_protocols(alpn)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host)
    tls = writer.get_extra_info("ssl_object")
    got = serial_of(tls.getpeercert(binary_form=True)), tls.selected_alpn_protocol()
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return got


async def served_serial(port: int, context: ssl.SSLContext, host: str = "localhost") -> int:
    return (await handshake(port, context, host))[0]


async def until(what: str, check: Callable[[], Any], timeout: float = 10.0) -> None:
    async def probe() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(probe(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


def connection_serial(response: httpx.Response) -> int:
    tls = response.extensions["network_stream"].get_extra_info("ssl_object")
    return serial_of(tls.getpeercert(binary_form=True))


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    folder = tmp_path / "ca"
    pki.init_ca(folder)
    for name in ("caller", "ops"):
        pki.issue(folder, name)
    return folder


def node_config(directory: Path, live: Live, extra: str = "", interval: float = INTERVAL) -> Path:
    """A node named greeter serving the live files; its one skill ``hold``
    (a step that waits for the file its message names), ``extra`` appended."""
    (directory / "hold.py").write_text(
        "import asyncio\nfrom pathlib import Path\nfrom pydantic import BaseModel\n"
        "from agent_node import Workflow\n\n"
        "class S(BaseModel):\n    text: str = ''\n    reply: str = ''\n\n"
        "wf = Workflow('hold', version='1')\nwf.state(S)\n\n"
        "@wf.step\nasync def hold(s: S) -> dict:\n"
        "    while not Path(s.text).exists():\n        await asyncio.sleep(0.05)\n"
        "    return {'reply': 'released'}\n"
    )
    config = directory / "agent-node.yaml"
    config.write_text(
        "name: greeter\nlisten: {host: 127.0.0.1, port: 0}\n"
        f"store: sqlite:///{directory}/greeter.db\n"
        f"skills:\n  - {{id: hold, workflow: '{directory}/hold.py:wf', default: true}}\n"
        f"tls: {{cert: {live.cert}, key: {live.key}, trust: [{live.trust}],"
        f" reload_interval: {interval}}}\n"
        f"policy: {{operators: ['{OPS}']}}\n" + extra
    )
    return config


@contextlib.asynccontextmanager
async def node(directory: Path, config: Path, flags: list[str] | None = None) -> AsyncIterator[str]:
    with serving_config(directory, config, flags or []) as url:
        yield url


def send(text: str, method: str = "SendMessage") -> dict[str, Any]:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}


# -- a served node ------------------------------------------------------------------


async def test_a_new_certificate_reaches_new_connections_while_open_ones_stay(
    tmp_path: Path, ca: Path
) -> None:
    live = Live(tmp_path / "live")
    old_cert, old_key = issued(ca, "greeter")
    live.publish(old_cert, old_key, (ca / "ca.pem").read_bytes())
    caller, ops = caller_context(ca, "caller"), caller_context(ca, "ops")
    release = tmp_path / "release"
    async with (
        node(tmp_path, node_config(tmp_path, live)) as url,
        httpx.AsyncClient(verify=caller, base_url=url, timeout=20) as kept,
        httpx.AsyncClient(verify=caller, base_url=url, timeout=20) as streaming,
    ):
        port = int(url.rsplit(":", 1)[1])
        card = await kept.get("/.well-known/agent-card.json")
        assert connection_serial(card) == serial_of(old_cert)
        opened = streaming.stream(
            "POST", "/a2a", json=send(str(release), "SendStreamingMessage"), headers=V10
        )
        async with opened as stream:
            assert connection_serial(stream) == serial_of(old_cert)
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("data:")  # the task, working

            new_cert, new_key = issued(ca, "greeter")
            live.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())

            async def new_one_served() -> bool:
                return await served_serial(port, caller) == serial_of(new_cert)

            await until("a new connection gets the new certificate", new_one_served)
            # HTTP/2 still offered
            h2 = await handshake(port, caller_context(ca, "caller"), alpn=["h2", "http/1.1"])
            assert h2 == (serial_of(new_cert), "h2")

            # The kept-alive connection is still the old one, and still answers.
            again = await kept.get("/.well-known/agent-card.json")
            assert again.status_code == 200 and connection_serial(again) == serial_of(old_cert)
            # The open stream goes on to its end.
            release.touch()
            rest = [line async for line in lines]
        assert any("TASK_STATE_COMPLETED" in line for line in rest), rest

        async with httpx.AsyncClient(verify=ops, base_url=url) as operator:
            metrics = (await operator.get("/metrics")).text
    not_after = x509.load_pem_x509_certificates(new_cert)[0].not_valid_after_utc.timestamp()
    expiry = re.search(
        r'^agent_node_tls_certificate_expiry_timestamp_seconds\{role="server"\} (\S+)$',
        metrics,
        re.M,
    )
    assert expiry is not None and float(expiry.group(1)) == not_after, metrics
    assert 'agent_node_tls_reloads_total{outcome="success",role="server"} 1.0' in metrics
    said = [line for line in (tmp_path / "node.err").read_text().splitlines() if "tls:" in line]
    assert len(said) == 1, said
    assert f"serial {serial_of(new_cert):x}" in said[0]
    assert "spiffe://example.org/agent/greeter" in said[0]


async def test_a_ca_removed_from_the_bundle_is_refused_without_a_restart(
    tmp_path: Path, ca: Path
) -> None:
    new_ca = tmp_path / "new-ca"
    pki.init_ca(new_ca)
    pki.issue(new_ca, "caller")
    old_pem, new_pem = (ca / "ca.pem").read_bytes(), (new_ca / "ca.pem").read_bytes()
    live = Live(tmp_path / "live")
    cert, key = issued(ca, "greeter")
    live.publish(cert, key, old_pem)
    # Both callers verify the node (of the old CA); each presents its CA's certificate.
    of_old = caller_context(ca, "caller")
    of_new = caller_context(ca, "caller", issued_by=new_ca)

    async def answered(context: ssl.SSLContext) -> bool:
        async with httpx.AsyncClient(verify=context, base_url=url, timeout=5) as client:
            try:
                return (await client.get("/.well-known/agent-card.json")).status_code == 200
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                return False

    async with node(tmp_path, node_config(tmp_path, live)) as url:
        assert await answered(of_old) and not await answered(of_new)
        live.publish(cert, key, old_pem + new_pem)  # the new CA added
        await until("the new CA is trusted", lambda: answered(of_new))
        assert await answered(of_old)
        live.publish(cert, key, new_pem)  # the old one removed

        async def old_refused() -> bool:
            return not await answered(of_old)

        await until("the removed CA is refused", old_refused)
        assert await answered(of_new)


async def test_a_certificate_without_its_key_keeps_the_old_one_serving(
    tmp_path: Path, ca: Path
) -> None:
    live = Live(tmp_path / "live")
    old_cert, old_key = issued(ca, "greeter")
    live.publish(old_cert, old_key, (ca / "ca.pem").read_bytes())
    caller = caller_context(ca, "caller")
    async with node(tmp_path, node_config(tmp_path, live)) as url:
        port = int(url.rsplit(":", 1)[1])
        new_cert, new_key = issued(ca, "greeter")
        target = live.folder / "..data"
        (target / "tls.crt").write_bytes(new_cert)  # written in place, the key not yet
        log = tmp_path / "node.err"

        async def refused() -> bool:
            return "key values mismatch" in log.read_text()

        await until("the refusal is logged", refused)
        await asyncio.sleep(INTERVAL * 4)  # looks that find it again say nothing more
        assert await served_serial(port, caller) == serial_of(old_cert)
        said = [line for line in log.read_text().splitlines() if "tls:" in line]
        assert len(said) == 1, said
        assert f"{live.cert} / key {live.key}" in said[0] and "kept" in said[0]

        (target / "tls.key").write_bytes(new_key)

        async def new_one_served() -> bool:
            return await served_serial(port, caller) == serial_of(new_cert)

        await until("the whole new set is taken", new_one_served)


async def test_sighup_takes_new_files_at_once(tmp_path: Path, ca: Path) -> None:
    live = Live(tmp_path / "live")
    old_cert, old_key = issued(ca, "greeter")
    live.publish(old_cert, old_key, (ca / "ca.pem").read_bytes())
    caller = caller_context(ca, "caller")
    config = node_config(tmp_path, live, interval=3600)  # no look of its own
    command = [sys.executable, "-m", "agent_node.cli.main", "serve", "--config", str(config)]
    with (tmp_path / "node.err").open("w") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().rsplit(":", 1)[1])
        new_cert, new_key = issued(ca, "greeter")
        live.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())
        await asyncio.sleep(0.3)
        assert await served_serial(port, caller) == serial_of(old_cert)
        process.send_signal(signal.SIGHUP)

        async def new_one_served() -> bool:
            return await served_serial(port, caller) == serial_of(new_cert)

        await until("SIGHUP took the new files", new_one_served, timeout=3)
        assert process.poll() is None  # and the node serves on
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


async def test_the_grpc_port_gets_the_new_certificate(tmp_path: Path, ca: Path) -> None:
    live = Live(tmp_path / "live")
    old_cert, old_key = issued(ca, "greeter")
    live.publish(old_cert, old_key, (ca / "ca.pem").read_bytes())
    caller = caller_context(ca, "caller")
    async with node(tmp_path, node_config(tmp_path, live), ["--grpc-port", "0"]) as url:
        async with httpx.AsyncClient(verify=caller, base_url=url) as client:
            card = (await client.get("/.well-known/agent-card.json")).json()
        target = next(
            i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"
        )
        port = int(target.rsplit(":", 1)[1])
        first = await handshake(port, caller_context(ca, "caller"), alpn=["h2"])
        assert first == (serial_of(old_cert), "h2")
        new_cert, new_key = issued(ca, "greeter")
        live.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())

        async def new_one_served() -> bool:
            got = await handshake(port, caller_context(ca, "caller"), alpn=["h2"])
            return got == (serial_of(new_cert), "h2")

        await until("the gRPC port serves the new certificate", new_one_served)


class _Peer(FakePeer):
    """A peer of our PKI over real TLS that notes each client certificate's serial."""

    url = ""

    def card(self) -> dict[str, Any]:
        card = super().card()
        card["supportedInterfaces"][0]["url"] = f"{self.url}/a2a"
        return card


async def test_a_delegating_node_presents_its_new_certificate_to_its_peer(
    tmp_path: Path, ca: Path
) -> None:
    peer, serials = _Peer(), []

    async def answer(request: Request) -> Response:
        chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
        serials.append(serial_of(chain[0].encode()) if chain else None)
        relayed = httpx.Request(request.method, str(request.url), content=await request.body())
        said = peer.handle(relayed)
        # One connection per request: a kept-alive one would show the old certificate.
        headers = {"content-type": "application/json", "connection": "close"}
        return Response(said.content, said.status_code, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    pki.issue(ca, "p")
    peer_tls = server_context(ca / "p.pem", ca / "p-key.pem", [ca / "ca.pem"])
    live = Live(tmp_path / "live")
    old_cert, old_key = issued(ca, "greeter")
    live.publish(old_cert, old_key, (ca / "ca.pem").read_bytes())
    (tmp_path / "relay.yaml").write_text(
        "workflow: {id: relay, version: '1', start: hand,"
        " state_schema: {type: object, properties: {answer: {type: object}}}}\n"
        "nodes:\n  hand: {type: delegate, peer: p, text: hi, output: answer, next: done}\n"
        "  done: {type: end}\n"
    )
    async with served(app, peer_tls) as peer_url:
        peer.url = peer_url
        extra = f"peers: [{{name: p, url: '{peer_url}'}}]\npush: {{allow: [127.0.0.0/8]}}\n"
        config = node_config(tmp_path, live, extra)
        text = config.read_text().replace(
            "default: true}",
            f"default: true}}\n  - {{id: relay, workflow: '{tmp_path}/relay.yaml'}}",
        )
        config.write_text(text)
        caller = caller_context(ca, "caller")
        async with (
            node(tmp_path, config) as url,
            httpx.AsyncClient(verify=caller, base_url=url, timeout=20) as client,
        ):
            port = int(url.rsplit(":", 1)[1])

            async def delegated() -> None:
                body = send("go")
                body["params"]["message"]["metadata"] = {"skill": "relay"}
                done = (await client.post("/a2a", json=body, headers=V10)).json()
                assert done["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", done

            await delegated()
            assert serials and set(serials) == {serial_of(old_cert)}, serials
            new_cert, new_key = issued(ca, "greeter")
            live.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())

            async def new_one_served() -> bool:
                return await served_serial(port, caller) == serial_of(new_cert)

            await until("the node took the new files", new_one_served)
            serials.clear()
            await delegated()
            assert serials and set(serials) == {serial_of(new_cert)}, serials


# -- contexts of this process ---------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, ca: Path) -> Live:
    live = Live(tmp_path / "live")
    cert, key = issued(ca, "server")
    live.publish(cert, key, (ca / "ca.pem").read_bytes())
    return live


@contextlib.asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_every_client_hello_gets_the_current_context_with_sni_or_without(
    files: Live, ca: Path
) -> None:
    watch = watched(files.cert, files.key, [files.trust], interval=INTERVAL)
    listening = serving(watch, lambda: server_context(files.cert, files.key, [files.trust]))
    caller = caller_context(ca, "caller")
    async with tls_server(listening) as port:
        new_cert, new_key = issued(ca, "server")
        files.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())
        await asyncio.sleep(INTERVAL)
        assert watch.look() == "success"
        # localhost: SNI sent; 127.0.0.1: none (an IP address is never sent as SNI).
        for host in ("localhost", "127.0.0.1"):
            assert await served_serial(port, caller, host) == serial_of(new_cert), host


@pytest.mark.parametrize(
    "swap",
    ["key of another", "missing key", "half written", "expired", "not yet valid"],
)
async def test_an_unsound_set_never_replaces_a_sound_one(
    files: Live, ca: Path, swap: str, caplog: pytest.LogCaptureFixture
) -> None:
    watch = watched(files.cert, files.key, [files.trust], interval=INTERVAL)
    listening = serving(watch, lambda: server_context(files.cert, files.key, [files.trust]))
    caller = caller_context(ca, "caller")
    sound = serial_of(files.cert.read_bytes())
    data = files.folder / "..data"
    now = dt.datetime.now(dt.UTC)
    if swap == "key of another":
        (data / "tls.crt").write_bytes(issued(ca, "server")[0])
    elif swap == "missing key":
        (data / "tls.key").unlink()
    elif swap == "half written":
        cert, key = issued(ca, "server")
        (data / "tls.crt").write_bytes(cert[: len(cert) // 3])
        (data / "tls.key").write_bytes(key)
    else:
        start = now - dt.timedelta(days=3) if swap == "expired" else now + dt.timedelta(days=1)
        cert, key = issued(ca, "server", days=1, not_before=start)
        files.publish(cert, key, (ca / "ca.pem").read_bytes())
    caplog.set_level(logging.WARNING, "agent_node.security.tls_reload")
    async with tls_server(listening) as port:
        await asyncio.sleep(INTERVAL)
        assert await served_serial(port, caller) == sound  # the handshake looked
        assert watch.look(force=True) == "failure"
    said = [r.getMessage() for r in caplog.records]
    assert said and all(m.startswith("tls: kept the certificate in use: ") for m in said), said
    reason = {
        "key of another": "key values mismatch",
        "missing key": f"{files.key} is missing",
        "half written": f"{files.cert}: no PEM certificate could be read",
        "expired": f"{files.cert} expired on ",
        "not yet valid": f"{files.cert} is valid only from ",
    }[swap]
    assert reason in said[0], said


async def test_a_calling_node_presents_new_certificates_and_drops_removed_cas(
    tmp_path: Path, ca: Path
) -> None:
    """The client side: new connections present the new certificate; a CA
    removed from the bundle no longer vouches for a server."""
    mine = Live(tmp_path / "mine")
    cert, key = issued(ca, "client")
    mine.publish(cert, key, (ca / "ca.pem").read_bytes())
    watch = watched(mine.cert, mine.key, [mine.trust], interval=INTERVAL)
    context = calling(watch, lambda: client_context(mine.cert, mine.key, [mine.trust]))
    presented: list[int] = []

    async def answer(request: Request) -> Response:
        chain = request.scope["extensions"]["tls"]["client_cert_chain"]
        presented.append(serial_of(chain[0].encode()))
        return Response("ok", headers={"connection": "close"})

    app = Starlette(routes=[Route("/", answer)])
    pki.issue(ca, "server")
    tls = server_context(ca / "server.pem", ca / "server-key.pem", [ca / "ca.pem"])
    async with served(app, tls) as url, http_client(context, timeout=5) as client:
        assert (await client.get(url)).status_code == 200
        new_cert, new_key = issued(ca, "client")
        other = tmp_path / "other-ca"
        pki.init_ca(other)
        mine.publish(new_cert, new_key, (other / "ca.pem").read_bytes())  # ours removed
        await asyncio.sleep(INTERVAL)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(url)
        mine.publish(new_cert, new_key, (ca / "ca.pem").read_bytes())
        await asyncio.sleep(INTERVAL)
        assert (await client.get(url)).status_code == 200
    assert presented == [serial_of(cert), serial_of(new_cert)]


def test_flags_naming_the_files_keep_the_files_reload_interval(tmp_path: Path) -> None:
    tls = {"cert": "a.pem", "key": "a-key.pem", "trust": ["ca.pem"], "reload_interval": 30}
    config = NodeConfig.model_validate({"name": "n", "tls": tls})
    flags = TlsSettings(cert="b.pem", key="b-key.pem", trust=["ca.pem"])
    assert config.with_overrides(tls=flags).tls == flags.model_copy(update={"reload_interval": 30})
