"""A2A 1.0's gRPC contract (§10), for our server and our client alike.

:mod:`.messages` builds the message classes of ``lf.a2a.v1`` from our
``protocols/a2a-1.0/a2a.proto`` (compiled into :mod:`.descriptor` by
:mod:`.compile`) and converts them to and from the JSON the HTTP bindings
speak. Importing it imports protobuf (``pip install 'agent-node[grpc]'``):
only a node that serves gRPC, or calls a peer over it, does.
"""
