"""What an idle asyncio TLS connection holds, made less.

An open SSE stream is a TLS connection that sits idle for most of its life,
and asyncio keeps per connection what it needs only while bytes move or
what nobody asks for. :func:`lean_tls_buffers` patches asyncio's
``SSLProtocol`` once per process (served and opened connections alike):

* reads go through one buffer per thread, not 256 KiB per connection;
* the decoded peer certificate (``get_extra_info("peercert")``, a dict of
  ~1.8 KiB that asyncio builds at every handshake) is built when asked,
  from the connection's ``ssl_object``, not kept.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["TLS_READ_BUFFER", "lean_tls_buffers"]

#: Bytes a TLS connection reads from its socket at a time. asyncio's own is
#: 256 KiB, allocated per connection for its whole life: 358 KiB of resident
#: memory per open SSE stream over mutual TLS, of which glibc returned none
#: once the connections closed. A TLS record holds at most 16 KiB, so reads
#: of 32 KiB lose nothing.
TLS_READ_BUFFER = 32 * 1024
#: The read buffer of each thread's TLS connections (:func:`lean_tls_buffers`).
_READS = threading.local()


def lean_tls_buffers() -> None:
    """Make every asyncio TLS connection of this process (served and opened)
    read through one buffer of :data:`TLS_READ_BUFFER` per thread, not one
    of 256 KiB each.

    asyncio reads a TLS connection's socket into its buffer and copies what
    came into the connection's memory BIO at once, in the same callback
    (``get_buffer``, ``recv_into``, ``buffer_updated``: nothing runs in
    between), so the connections of one event loop can share it: an idle
    connection — an open SSE stream, a peer's kept-alive connection — then
    holds no read buffer at all (it held 32 KiB of the 50 KiB of Python
    memory an open stream cost)."""
    from asyncio import sslproto

    protocol = sslproto.SSLProtocol
    if getattr(protocol, "_agent_node_shared_reads", False):
        return
    protocol.max_size = min(protocol.max_size, TLS_READ_BUFFER)  # its decrypted reads
    made = protocol.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self._ssl_buffer = self._ssl_buffer_view = None  # its own: dropped

    def get_buffer(self: Any, n: int) -> memoryview:
        view: memoryview | None = getattr(_READS, "view", None)
        if view is None:
            view = _READS.view = memoryview(bytearray(TLS_READ_BUFFER))
        self._ssl_buffer_view = view  # buffer_updated copies from it
        return view

    protocol.__init__ = init  # type: ignore[method-assign]
    protocol.get_buffer = get_buffer  # type: ignore[method-assign]
    _peercert_when_asked(protocol)
    protocol._agent_node_shared_reads = True  # type: ignore[attr-defined]


def _peercert_when_asked(protocol: Any) -> None:
    """Drop the certificate dict a handshake stores; build it when asked."""
    handshake_complete = protocol._on_handshake_complete
    extra_info = protocol._get_extra_info

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        handshake_complete(self, handshake_exc)
        self._extra.pop("peercert", None)

    def get_extra_info(self: Any, name: str, default: Any = None) -> Any:
        ssl_object = self._extra.get("ssl_object")
        if name == "peercert" and ssl_object is not None:
            return ssl_object.getpeercert()
        return extra_info(self, name, default)

    protocol._on_handshake_complete = on_handshake_complete
    protocol._get_extra_info = get_extra_info
