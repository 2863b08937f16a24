"""The gRPC binding of A2A 1.0 (§10): the ``lf.a2a.v1.A2AService`` over grpc.aio.

Served only when ``listen.grpc_port`` is set, on that port of its own, and
only then are grpcio and protobuf imported (``pip install
'agent-node[grpc]'``). The messages are the wire contract's
(:mod:`agent_node.a2a.protocol.grpc`); :mod:`.service` serves every method
through the same operations table as the HTTP bindings, :mod:`.server`
makes the server (mutual TLS, limits).
"""
