"""HTTP/2's server side on asyncio: the frames (:mod:`.wire`), header blocks
(:mod:`.fields`), a connection's life (:mod:`.connection`), and the node's
HTTP app served over it (:mod:`.asgi`); the gRPC binding's calls run over
the same connection (:mod:`agent_node.a2a.server.grpc.connection`)."""
