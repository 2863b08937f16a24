"""What an idle asyncio TLS connection holds, made less.

An open SSE stream is a TLS connection that sits idle for most of its life,
and asyncio keeps per connection what it needs only while bytes move or
what nobody asks for. :func:`lean_tls_buffers` puts a subclass of asyncio's
``SSLProtocol`` in its place, once per process (served and opened
connections alike), whose connections hold less:

* reads go through one buffer per thread, not 256 KiB per connection;
* the decoded peer certificate (``get_extra_info("peercert")``, a dict of
  ~1.8 KiB that asyncio builds at every handshake) is built when asked,
  from the connection's ``ssl_object``, not kept;
* its attributes live in slots: asyncio sets 37, and past 29 CPython gives
  an instance a dict of its own (~1.6 KiB, against ~0.3 KiB of slots);
* its write backlog is a list: an empty deque keeps a block of 64 items
  (~0.7 KiB), and asyncio only appends to it, reads, replaces and deletes
  its first item, and clears it.

One thing more, for the node's listeners: a served connection whose
protocol has a ``read_timeout`` (the node's HTTP protocol:
``limits.read_timeout``) must finish its TLS handshake within it. uvicorn
leaves asyncio's default, 60 s, in which a client that connects and says
nothing holds a descriptor: a TLS connection is handed to its protocol only
once the handshake is done, so the protocol's own deadlines cannot reach it.
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
#: What asyncio's ``SSLProtocol`` (3.11 to 3.13) sets on its instances. A
#: name it no longer sets costs an unused slot; one it adds goes to the dict.
_ATTRIBUTES = (
    "_app_protocol",
    "_app_protocol_buffer_updated",
    "_app_protocol_get_buffer",
    "_app_protocol_is_buffer",
    "_app_reading_paused",
    "_app_state",
    "_app_transport",
    "_app_transport_created",
    "_app_writing_paused",
    "_conn_lost",
    "_eof_received",
    "_extra",
    "_incoming",
    "_incoming_high_water",
    "_incoming_low_water",
    "_loop",
    "_outgoing",
    "_outgoing_high_water",
    "_outgoing_low_water",
    "_server_hostname",
    "_server_side",
    "_ssl_buffer",
    "_ssl_buffer_view",
    "_ssl_handshake_timeout",
    "_ssl_reading_paused",
    "_ssl_shutdown_timeout",
    "_ssl_writing_paused",
    "_sslcontext",
    "_sslobj",
    "_state",
    "_transport",
    "_waiter",
    "_write_backlog",
    "_write_buffer_size",
)


def lean_tls_buffers() -> None:
    """Make every asyncio TLS connection of this process (served and opened)
    read through one buffer of :data:`TLS_READ_BUFFER` per thread, not one
    of 256 KiB each, and hold less while idle (see the module).

    asyncio reads a TLS connection's socket into its buffer and copies what
    came into the connection's memory BIO at once, in the same callback
    (``get_buffer``, ``recv_into``, ``buffer_updated``: nothing runs in
    between), so the connections of one event loop can share it: an idle
    connection — an open SSE stream, a peer's kept-alive connection — then
    holds no read buffer at all (it held 32 KiB of the 50 KiB of Python
    memory an open stream cost).

    asyncio makes its TLS connections through the module's name
    (``sslproto.SSLProtocol(...)``), so the subclass put there is what every
    later connection is made of."""
    from asyncio import sslproto

    if getattr(sslproto.SSLProtocol, "_agent_node_lean", False):
        return
    sslproto.SSLProtocol = _lean(sslproto.SSLProtocol)  # type: ignore[misc]


def _lean(base: type[Any]) -> type[Any]:
    # Not a class attribute of asyncio's (a slot would hide its default).
    slots = tuple(name for name in _ATTRIBUTES if not hasattr(base, name))

    class LeanSSLProtocol(base):  # type: ignore[misc]
        __slots__ = slots
        _agent_node_lean = True
        max_size = min(base.max_size, TLS_READ_BUFFER)  # its decrypted reads

        def __init__(self, loop: Any, app_protocol: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(loop, app_protocol, *args, **kwargs)
            read_timeout = getattr(app_protocol, "read_timeout", None)
            if self._server_side and read_timeout is not None:
                self._ssl_handshake_timeout = read_timeout
            self._ssl_buffer: bytearray | None = None  # its own: dropped
            self._ssl_buffer_view: memoryview | None = None
            self._write_backlog: list[bytes] = []

        def get_buffer(self, n: int) -> memoryview:
            view: memoryview | None = getattr(_READS, "view", None)
            if view is None:
                view = _READS.view = memoryview(bytearray(TLS_READ_BUFFER))
            self._ssl_buffer_view = view  # buffer_updated copies from it
            return view

        def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
            super()._on_handshake_complete(handshake_exc)
            self._extra.pop("peercert", None)  # built when asked

        def _get_extra_info(self, name: str, default: Any = None) -> Any:
            ssl_object = self._extra.get("ssl_object")
            if name == "peercert" and ssl_object is not None:
                return ssl_object.getpeercert()
            return super()._get_extra_info(name, default)

    return LeanSSLProtocol
