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

And what keeps other *processes* of the machine out (a hostile-client walk:
any local user's ``curl`` cancelled a task through the UI, an operator of
every node): with a ``token`` (``agent-node ui`` always makes one, and prints
it in the address it prints, as Jupyter does), every request must carry it
— in a cookie the address sets (``?token=…`` is exchanged for an
``HttpOnly``, ``SameSite=Strict`` cookie by a redirect that drops it from
the address bar — to a path of this server only: ``//evil.com/?token=…``
was sent on to ``//evil.com/``), or as ``Authorization: Bearer …`` from a tool. Others get
401 and nothing else. Cookies do not tell ports apart: the cookie's name
carries the port.
"""

from __future__ import annotations

import hmac
import html
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, Response
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


def _refusal(scope: Scope, status: int, message: str) -> Response:
    """JSON for the API and tools; a readable page where a browser opened one."""
    browsing = "text/html" in Headers(scope=scope).get("accept", "")
    if scope["path"].startswith("/api/") or not browsing:
        return JSONResponse({"error": {"message": message}}, status)
    page = _PAGE.format(message=html.escape(message))
    return HTMLResponse(page, status)


_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    "<title>agent-node ui</title></head><body><h1>agent-node ui</h1>"
    "<p>{message}</p></body></html>"
)


def _own_path(path: str) -> str:
    """``path`` as a location on this server: encoded (no control
    characters, no backslash), and with one leading slash — ``//host/``
    (or ``/\\host/``, which browsers read alike) is another site."""
    return "/" + quote(path, safe="/:@!$&'()*+,;=~").lstrip("/")


class Guard:
    """ASGI middleware: the checks of the module doc, then ``app``."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        #: The port served, once known (the server may have picked a free one).
        self.port: int | None = None
        #: What every request must carry (None: nothing; a UI run as a library).
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        token = self.token
        if refused is None and token is not None and not self._carries(scope, token):
            exchanged = self._exchange(scope, token)
            if exchanged is not None:
                await exchanged(scope, receive, self._with_headers(scope, send))
                return
            refused = (
                401,
                (
                    "this page's token is no longer valid (or was never given):"
                    " open the address 'agent-node ui' printed, it carries the UI's token"
                ),
            )
        if refused is not None:
            status, message = refused
            response = _refusal(scope, status, message)
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

    @property
    def cookie(self) -> str:
        """The name of the cookie holding the token (one per port)."""
        return f"agent_node_ui_{self.port}"

    def _carries(self, scope: Scope, token: str) -> bool:
        headers = Headers(scope=scope)
        said = cookie_parser(headers.get("cookie", "")).get(self.cookie, "")
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer ":
            said = said or bearer[7:].strip()
        return hmac.compare_digest(said.encode(), token.encode())

    def _exchange(self, scope: Scope, token: str) -> Response | None:
        """A page opened with the right ``?token=``: a redirect to the same
        address without it, setting the cookie."""
        if scope["method"] not in ("GET", "HEAD"):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for name, value in query if name == "token"]
        if not given or not hmac.compare_digest(given[0].encode(), token.encode()):
            return None
        rest = urlencode([(name, value) for name, value in query if name != "token"])
        location = _own_path(scope["path"]) + (f"?{rest}" if rest else "")
        response = Response(status_code=303, headers={"location": location})
        response.set_cookie(self.cookie, token, httponly=True, samesite="strict", path="/")
        return response

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
