"""A reverse proxy in front of a peer that fails the way real fronts do.

    python flaky_front.py --port P --certs DIR --name b --upstream https://127.0.0.1:Q \
        --client a --fail N --status 500|503 --log FILE

Serves mutual TLS as ``DIR/NAME.pem`` (so the caller sees the peer's own
identity, as behind a TLS-terminating load balancer that holds the peer's
certificate), and forwards every request to ``--upstream`` presenting
``DIR/CLIENT.pem``. The first ``--fail`` POSTs get no forwarding: an HTML
error page with ``--status`` (503 also says ``Retry-After: 1``), the page
naming an internal address, as nginx's or a framework's debug page does.
Each POST is logged as one JSON line ``{"method", "status"}`` (the JSON-RPC
method, and what the front answered).
"""

from __future__ import annotations

import argparse
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

PAGE = (
    "<html><head><title>{status} Error</title></head><body><h1>{status} Error</h1>"
    "<p>upstream http://10.20.30.40:8080/a2a did not answer</p></body></html>"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--certs", "--name", "--upstream", "--client", "--log"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--status", type=int, default=500)
    args = parser.parse_args()
    certs = Path(args.certs)
    trust = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    trust.load_cert_chain(certs / f"{args.client}.pem", certs / f"{args.client}-key.pem")
    upstream = httpx.AsyncClient(base_url=args.upstream, verify=trust, timeout=60)
    failures = {"left": args.fail}
    log = Path(args.log)

    async def forward(request: Request) -> Response:
        body = await request.body()
        if request.method == "POST":
            method = _method(body)
            if failures["left"] > 0:
                failures["left"] -= 1
                _note(log, method, args.status)
                headers = {"Retry-After": "1"} if args.status == 503 else {}
                page = PAGE.format(status=args.status)
                return HTMLResponse(page, status_code=args.status, headers=headers)
        keep = {"content-type", "a2a-version", "idempotency-key", "traceparent", "accept"}
        headers = {k: v for k, v in request.headers.items() if k.lower() in keep}
        answer = await upstream.request(
            request.method, request.url.path, content=body, headers=headers
        )
        if request.method == "POST":
            _note(log, _method(body), answer.status_code)
        kept = {"content-type": answer.headers.get("content-type", "application/json")}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=str(certs / f"{args.name}.pem"),
        ssl_keyfile=str(certs / f"{args.name}-key.pem"),
        ssl_ca_certs=str(certs / "ca.pem"),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )


def _method(body: bytes) -> str | None:
    try:
        found: Any = json.loads(body).get("method")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _note(log: Path, method: str | None, status: int) -> None:
    with log.open("a") as out:
        out.write(json.dumps({"method": method, "status": status}) + "\n")


if __name__ == "__main__":
    main()
