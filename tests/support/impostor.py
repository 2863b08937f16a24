"""An impostor: a raw TLS server holding a genuine certificate of the CA —
another identity's — that records what reaches it.

It answers nothing. Per connection it records the TCP accept, whether the
TLS handshake completed (and the client's identity), and every byte of
application data that arrived after it: a client that checks who it talks
to right after the handshake sends none.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent_node.security.tls import identity_of, server_context


@dataclass
class Impostor:
    port: int
    #: TCP connections accepted.
    connections: int = 0
    #: The client identity of each completed handshake.
    handshakes: list[str | None] = field(default_factory=list)
    #: Application data received after a handshake, all connections together.
    received: bytearray = field(default_factory=bytearray)


@contextmanager
def impostor(certs: Path, name: str, port: int = 0) -> Iterator[Impostor]:
    """Serve on ``127.0.0.1:port`` (0: any) as ``name`` (``certs/NAME.pem``),
    requiring a client certificate of ``certs/ca.pem``, until the block ends."""
    context = server_context(certs / f"{name}.pem", certs / f"{name}-key.pem", [certs / "ca.pem"])
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.1)
    seen = Impostor(listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            seen.connections += 1
            threading.Thread(target=record, args=(raw,), daemon=True).start()

    def record(raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                seen.handshakes.append(identity_of(tls.getpeercert(binary_form=True) or b""))
                while chunk := tls.recv(65536):
                    seen.received += chunk
        except (OSError, ssl.SSLError):  # the client hung up, as it should
            pass
        finally:
            raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        listener.close()
