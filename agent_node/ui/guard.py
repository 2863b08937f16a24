"""What keeps other sites out of the UI server: it acts as an operator
toward every node, so a page from elsewhere must not be able to use it.

* ``Host`` must be the loopback address and port it serves
  (``127.0.0.1:P`` or ``localhost:P``): a site that rebinds its own DNS
  name to 127.0.0.1 sends its own name, and is refused.
* The API (``/api/…``) answers only requests of its own page: a browser
  marks the others ``Sec-Fetch-Site: cross-site`` or ``same-site``. A
  request that changes something must also carry the page's own
  ``Origin`` (or, from a tool that is no browser, neither ``Origin`` nor
  ``Sec-Fetch-Site``) and a JSON body, which no HTML form can send.
* No CORS: no ``Access-Control-*`` header is ever sent, so no other origin
  may read an answer. Every answer forbids framing (clickjacking) and
  sniffing, and the page may load scripts, styles and connections from its
  own origin only (Content-Security-Policy); API answers are not cached.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Guard"]

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class Guard:
    """ASGI middleware: the checks of the module doc, then ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: The port served, once known (the server may have picked a free one).
        self.port: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            status, message = refused
            response = JSONResponse({"error": {"message": message}}, status)
            await response(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if headers.get("host") not in hosts:
            return 421, "this server answers for 127.0.0.1 only"
        site = headers.get("sec-fetch-site")
        api = scope["path"].startswith("/api/")
        if api and site in ("cross-site", "same-site"):
            return 403, "the UI's API answers its own page only"
        if scope["method"] in _CHANGES:
            origin = headers.get("origin")
            own = f"http://{headers.get('host')}"
            if origin is not None and origin != own:
                return 403, f"requests from {origin} may not change anything here"
            if origin is None and site not in (None, "same-origin", "none"):
                return 403, "a change needs the page's own Origin"
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return 415, "send changes as application/json"
        return None

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        api = scope["path"].startswith("/api/")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return sending
