"""What the a2a-sdk client drivers of both generations share: the command line,
a TLS context presenting our client certificate, a mutual-TLS webhook that
records the pushes it gets, and the report.

    python client_vX.py --url URL --certs DIR --name NAME --hook HOOK [--dialect V]
        [--header NAME=VALUE]

The driver presents DIR/NAME.pem (trusting DIR/ca.pem) — or, with
``--header``, no certificate and that header on every request (a bearer
token, an API key: server TLS only) — and its webhook serves
DIR/HOOK.pem and requires a client certificate. It runs every operation its
generation's client offers, each on its own tasks; the report is one JSON
object on the last line of stdout, one key per step: what it returned (as wire
JSON), or ``{"error": {name, message, code}}``.

The drivers run in a virtual environment of their own (one a2a-sdk release and
httpx), so this module uses the standard library only: it cannot import the
project or its tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: How long a step waits for the node (a task to finish, a push to arrive).
PATIENCE = 30.0


@dataclass(frozen=True)
class Options:
    url: str
    certs: Path
    name: str
    hook: str
    #: The protocol version to speak, for a client that speaks more than one.
    dialect: str | None = None
    #: ``NAME=VALUE`` sent on every request instead of a client certificate.
    header: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self.header is None:
            return {}
        name, _, value = self.header.partition("=")
        return {name: value}


def options() -> Options:
    parser = argparse.ArgumentParser()
    for name in ("url", "certs", "name", "hook"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--dialect")
    parser.add_argument("--header")
    args = parser.parse_args()
    return Options(args.url, Path(args.certs), args.name, args.hook, args.dialect, args.header)


def client_tls(opts: Options) -> ssl.SSLContext:
    """Trust only our CA and present NAME's certificate (httpx takes it as ``verify=``)."""
    context = ssl.create_default_context(cafile=str(opts.certs / "ca.pem"))
    if opts.header is None:
        context.load_cert_chain(
            opts.certs / f"{opts.name}.pem", opts.certs / f"{opts.name}-key.pem"
        )
    return context


# The webhook


@dataclass
class Webhook:
    """An HTTPS server on 127.0.0.1 that requires a client certificate of our
    CA and records every POST: path, headers (lower-cased), JSON body and the
    caller certificate's subject alternative names (``URI:…``, ``DNS:…``)."""

    url: str
    pushes: list[dict[str, Any]] = field(default_factory=list)

    async def until(self, test: Callable[[dict[str, Any]], bool]) -> None:
        """Wait (up to :data:`PATIENCE`) until some push satisfies ``test``."""
        deadline = time.monotonic() + PATIENCE
        while not any(test(p) for p in list(self.pushes)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no such push among {len(self.pushes)}")
            await asyncio.sleep(0.05)


class _Recorder(BaseHTTPRequestHandler):
    pushes: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        peer = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
        names = [f"{kind}:{value}" for kind, value in peer.get("subjectAltName", ())]
        self.pushes.append(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(body),
                "caller": names,
            }
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stdout carries the report only


class webhook:
    """``async with webhook(opts) as hook``: a :class:`Webhook` served in a thread."""

    def __init__(self, opts: Options) -> None:
        context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cafile=str(opts.certs / "ca.pem")
        )
        context.load_cert_chain(
            opts.certs / f"{opts.hook}.pem", opts.certs / f"{opts.hook}-key.pem"
        )
        context.verify_mode = ssl.CERT_REQUIRED
        pushes: list[dict[str, Any]] = []
        handler = type("Recorder", (_Recorder,), {"pushes": pushes})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        port = self.server.server_address[1]
        self.hook = Webhook(f"https://127.0.0.1:{port}", pushes)

    async def __aenter__(self) -> Webhook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.hook

    async def __aexit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# Steps and the report


async def until(get: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Call ``get()`` until ``done(result)`` holds (up to :data:`PATIENCE`); the last result."""
    deadline = time.monotonic() + PATIENCE
    while True:
        result = await get()
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


def described(error: BaseException) -> dict[str, Any]:
    """An error as the report carries it: its class, message and JSON-RPC code, if any
    (0.3 keeps the error reply on ``error.error``; 1.x maps the code to a class)."""
    reply = getattr(error, "error", None)
    return {
        "name": type(error).__name__,
        "message": str(error),
        "code": getattr(reply, "code", None),
    }


async def attempt(
    call: Callable[[], Awaitable[Any]], wire: Callable[[Any], Any] = lambda x: x
) -> dict[str, Any]:
    """``{"value": wire(result)}``, or ``{"error": …}`` when the call raised."""
    try:
        return {"value": wire(await call())}
    except Exception as error:
        return {"error": described(error)}


def methods_of(client: object) -> list[str]:
    """The public methods a client object offers (its class and bases)."""
    return sorted(
        name
        for name in dir(type(client))
        if not name.startswith("_") and callable(getattr(type(client), name))
    )


async def report(steps: Mapping[str, Callable[[], Awaitable[Any]]]) -> None:
    """Run each named step in turn, record its result or its error, print the report."""
    out: dict[str, Any] = {}
    for name, step in steps.items():
        try:
            out[name] = await asyncio.wait_for(step(), 2 * PATIENCE)
        except Exception as error:
            out[name] = {"error": described(error)}
    print(json.dumps(out))
