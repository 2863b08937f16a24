"""The A2A edge of a node, in three packages whose imports point one way:

* :mod:`agent_node.a2a.protocol`: the wire contract, a leaf over pydantic and
  the standard library: the 1.0 and 0.3 objects, their conversion, the
  error table, the JSON Schemas, and the card signature's canonical form.
* :mod:`agent_node.a2a.peers`: the node as a client of other agents: the
  mTLS HTTP client, discovery and cards' signatures, the delegation state
  machine, its watchdog and the push receiver. It imports ``protocol`` only.
* :mod:`agent_node.a2a.server`: the node as an agent others call: one
  operations table, the JSON-RPC, HTTP+JSON and gRPC bindings, tasks as
  executions, streams, pushes to callers, the card and the operator API. It
  imports ``protocol``, and ``peers`` for the HTTP client its pushes use and
  the signer of its card.

Nothing in the core imports this package (``import agent_node`` stays free
of it).
"""
