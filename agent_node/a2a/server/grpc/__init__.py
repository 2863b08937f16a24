"""The gRPC binding of A2A 1.0 (§10): the ``lf.a2a.v1.A2AService`` over HTTP/2.

Served only when ``listen.grpc_port`` is set, on that port of its own, and
only then are hpack and protobuf imported (``pip install
'agent-node[grpc]'``). The messages are the wire contract's
(:mod:`agent_node.a2a.protocol.grpc`); :mod:`.service` serves every method
through the same operations table as the HTTP bindings, :mod:`.http2`
is the server and its connections (asyncio protocols), :mod:`.wire` their
HTTP/2, :mod:`.calls` what a method sees, :mod:`.status` gRPC's statuses,
:mod:`.server` makes the server (TLS, limits).
"""
