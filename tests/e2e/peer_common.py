"""What the two a2a-sdk peer servers share, whichever SDK they run with.

``sdk_peer_server.py`` (a2a-sdk 1.x) and ``sdk03_peer_server.py`` (a2a-sdk
0.3.x) run as scripts in different virtual environments, so this module is
imported from their own folder (``sys.path[0]``) and uses only the standard
library and httpx, which both environments hold: the JSON-lines log the tests
read, the judge's verdict, the command line (the scenario contract's of
:mod:`e2e.foreign`, with the judge's ``--delay``), the client certificate
the SDK pushes with, and uvicorn's mutual-TLS options. The scenarios
themselves are in ``peer_scenarios.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

JUDGE = f"a2a-sdk {importlib.metadata.version('a2a-sdk')}"
#: The request headers an ``execute`` entry records (None when absent).
LOGGED_HEADERS = ("idempotency-key", "a2a-version")


class Log:
    """Appends one JSON object per line to a file (the test reads it); with
    no file (a benchmark's peer), writes nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, **entry: Any) -> None:
        if self.path is None:
            return
        with self.path.open("a") as out:
            out.write(json.dumps({**entry, "at": time.time()}) + "\n")


def logged_headers(headers: Mapping[str, str]) -> dict[str, str | None]:
    """The LOGGED_HEADERS of a request, as an ``execute`` entry records them."""
    return {k: headers.get(k) for k in LOGGED_HEADERS}


def verdict(data: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The judge's artifact for a message's data: its data part and its text part."""
    name = str(data.get("name", ""))
    judged = f"{name} has {sum(c.isalpha() for c in name)} letters"
    return {"verdict": judged, "judge": JUDGE}, f"judged by {JUDGE}"


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options both servers take (see their docstrings); ``doc``: the server's."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--log", type=Path, help="the JSON-lines log (none: no log)")
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--push", action="store_true", help="declare and send pushes")
    parser.add_argument("--streaming", "--stream", action="store_true", help="declare streaming")
    parser.add_argument(
        "--require",
        default=None,
        help="HEADER=VALUE every A2A request must carry (the card excepted): 401 otherwise",
    )
    parser.add_argument(
        "--push-anonymously",
        action="store_true",
        help="push without a client certificate (server TLS only)",
    )
    return parser


def requiring(app: Any, args: argparse.Namespace, log: Log) -> Any:
    """``app`` behind the check of ``--require`` (the servers' auth hook), logging
    each refusal; the card stays public, as agents' cards are."""
    if not args.require:
        return app
    name, _, value = args.require.partition("=")
    wanted = (name.lower().encode(), value.encode())

    async def checked(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/.well-known/"):
            sent = dict(scope.get("headers") or ())
            query = scope.get("query_string", b"").decode()
            in_query = f"{name}={value}" in query.split("&")
            if sent.get(wanted[0]) != wanted[1] and not in_query:
                log.write(event="refused", path=scope["path"], had=wanted[0].decode() in str(sent))
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"credentials required"})
                return
        await app(scope, receive, send)

    return checked


async def serve(app: Any, args: argparse.Namespace) -> None:
    """Serve the ASGI ``app`` with uvicorn until it is stopped (SIGTERM, Ctrl-C)."""
    await uvicorn.Server(uvicorn.Config(app, **server_options(args))).serve()


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """``uvicorn.Config`` options: loopback on ``--port``, ``DIR/NAME.pem`` as the
    certificate, client certificates required and checked against ``DIR/ca.pem``."""
    return {
        "host": "127.0.0.1",
        "port": args.port,
        "log_level": "warning",
        "lifespan": "off",
        "ssl_certfile": args.certs / f"{args.name}.pem",
        "ssl_keyfile": args.certs / f"{args.name}-key.pem",
        "ssl_ca_certs": str(args.certs / "ca.pem"),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


def pushed_state(body: Mapping[str, Any]) -> str | None:
    """The state a push carries: 1.0 posts a StreamResponse (``task`` or
    ``statusUpdate``; an ``artifactUpdate`` carries none), 0.3 the task itself."""
    holder = body.get("task") or body.get("statusUpdate") or body
    state = (holder.get("status") or {}).get("state")
    return None if state is None else str(state)


def client_context(certs: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs / "ca.pem")
    context.load_cert_chain(certs / f"{name}.pem", certs / f"{name}-key.pem")
    return context


@asynccontextmanager
async def pushing(
    args: argparse.Namespace, log: Log, store: Any, sender: Any
) -> AsyncIterator[dict[str, Any]]:
    """The request handler's push arguments while it serves: none without
    ``--push``, else the SDK's config ``store`` class and its ``sender``
    class, pushing with :func:`push_client`."""
    if not args.push:
        yield {}
        return
    async with push_client(args.certs, None if args.push_anonymously else args.name, log) as http:
        configs = store()
        yield {"push_config_store": configs, "push_sender": sender(http, configs)}


def push_client(certs: Path, name: str | None, log: Log) -> httpx.AsyncClient:
    """The client the SDK pushes with (``name``'s certificate; None: none);
    every push it delivers is logged."""

    async def logged(response: httpx.Response) -> None:
        request = response.request
        body = json.loads(request.content)
        log.write(
            event="push",
            url=str(request.url),
            status=response.status_code,
            state=pushed_state(body),
            headers=dict(request.headers),
            body=body,
        )

    if name is None:
        verify = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs / "ca.pem")
    else:
        verify = client_context(certs, name)
    return httpx.AsyncClient(verify=verify, timeout=10, event_hooks={"response": [logged]})
