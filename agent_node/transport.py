"""How a node is served: uvicorn, over mutual TLS when configured.

The one place that sets uvicorn up. Uvicorn does not hand the peer
certificate to the app, so the HTTP protocol it runs is subclassed: on each
connection the peer's certificate is read once from the TLS session, and
every request on that connection carries it in its ASGI scope — the leaf as
``scope["extensions"]["tls"]["client_cert_chain"]`` (the ASGI TLS extension)
and the identity it names (:func:`agent_node.security.tls.identity_of`) as
``scope["agent_node.caller"]``.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["CALLER", "caller_of", "uvicorn_config"]

#: The ASGI scope key holding the caller's identity (None: no certificate).
CALLER = "agent_node.caller"


def caller_of(scope: Any) -> str | None:
    """The identity of the peer that sent the request of ``scope``."""
    value = scope.get(CALLER)
    return value if isinstance(value, str) else None


def uvicorn_config(app: Any, tls: ssl.SSLContext | None) -> Any:
    """A uvicorn config serving ``app``, over ``tls`` when given."""
    import uvicorn

    options: dict[str, Any] = {"log_level": "warning", "lifespan": "off"}
    if tls is not None:
        options["http"] = _peer_aware_protocol()
        options["ssl_context_factory"] = lambda _config, _default: tls
    return uvicorn.Config(app, **options)


def _peer_aware_protocol() -> type[Any]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools is a dependency
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    from agent_node.security.tls import identity_of

    class PeerAwareProtocol(Base):
        """Adds the TLS peer's certificate and identity to every request's scope."""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                return
            pem = ssl.DER_cert_to_PEM_cert(der)
            identity = identity_of(der)
            app = self.app

            async def with_peer(scope: Any, receive: Any, send: Any) -> None:
                extensions = scope.setdefault("extensions", {})
                extensions["tls"] = {"client_cert_chain": [pem]}
                scope[CALLER] = identity
                await app(scope, receive, send)

            self.app = with_peer

    return PeerAwareProtocol
