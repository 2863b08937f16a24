"""A request's method in its span, from a real node process (``agent-node
serve`` over mutual TLS) into a real OTLP receiver: a method OpenTelemetry's
HTTP conventions do not know — ``FOO`` or 30 KB of ``M`` over HTTP/2 (which
takes any token), ``PURGE`` over HTTP/1.1 (httptools takes it) — is
``_OTHER`` in ``http.request.method``, ``HTTP`` in the span's name, and the
method sent, cut short, in ``http.request.method_original``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e.test_hostile_node import Node, raw_h2, raw_http1
from support.nodes import serving_mtls
from support.otlp import OtlpReceiver, receiving
from support.tls import caller_context

from agent_node.security import pki

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

HUGE = "M" * 30_000


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with receiving() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        yield receiver


def head(method: str) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/a2a"),
    ]


async def test_an_unknown_method_is_other_and_never_the_span_s_name(
    otlp: OtlpReceiver, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    pki.init_ca(certs, trust_domain="example.org")
    for name in ("greeter", "alice"):
        pki.issue(certs, name)
    # A header cap the 30 KB method fits in: the app, and so the span, sees it.
    with serving_mtls(tmp_path, certs, "limits: {max_header_bytes: 65536}\n") as url:
        node = Node(url, tmp_path, certs, 0)
        port = int(url.rpartition(":")[2])
        for method in ("FOO", HUGE):
            answer = await raw_h2(node, port, head(method), None, "alice")
            assert ":status" in answer, answer  # answered, not refused as malformed
        purge = raw_http1(node, b"PURGE /a2a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert purge.startswith(b"HTTP/1.1 "), purge[:200]
        with httpx.Client(verify=caller_context(certs, "alice"), timeout=10) as http:
            assert http.get(f"{url}/.well-known/agent-card.json").status_code == 200
        spans = otlp.wait_for(lambda s: len(s) >= 4, "four request spans")
    names = sorted(span.name for span in spans)
    assert names == ["GET /.well-known/agent-card.json", *["HTTP /a2a"] * 3], names
    other = [span.attributes for span in spans if span.name == "HTTP /a2a"]
    assert {a["http.request.method"] for a in other} == {"_OTHER"}
    foo, cut, purge_sent = sorted(a["http.request.method_original"] for a in other)
    assert (foo, purge_sent) == ("FOO", "PURGE")
    assert cut.endswith("…") and cut[:-1] == HUGE[: len(cut) - 1] and len(cut) <= 100
    [card] = [span for span in spans if span.name.startswith("GET")]
    assert card.attributes["http.request.method"] == "GET"
    assert "http.request.method_original" not in card.attributes
