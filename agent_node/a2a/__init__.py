"""The A2A edge of a node: the protocol's wire objects, and the HTTP side.

The wire layer is a leaf over pydantic and the standard library; nothing in
the core imports this package (``import agent_node`` stays free of it).

* ``agent_node.a2a.models``: the A2A 1.0 wire objects (tasks, messages, parts,
  requests and responses), named and shaped as ``specification/a2a.proto``
  in its ProtoJSON mapping.
* ``agent_node.a2a.card_models``: the Agent Card wire objects.
* ``agent_node.a2a.compat``: A2A 0.3 <-> 1.0 conversion of plain JSON.
* ``agent_node.a2a.models_v03``: the A2A 0.3 wire objects, for the 0.3
  schemas and for tests that check what ``compat`` writes (the node itself
  speaks 0.3 through ``compat``, never through these models).
* ``agent_node.a2a.errors``: the one table of protocol errors.
* ``agent_node.a2a.schemas``: JSON Schemas of the 1.0 and 0.3 objects, kept
  in ``protocols/a2a-1.0/`` and ``protocols/a2a-0.3/``.

Above them, the node's HTTP side:

* ``agent_node.a2a.card``: the node's Agent Card, built from its
  configuration and hosted workflows, with its ETag.
* ``agent_node.a2a.app``: the Starlette application serving it.
* ``agent_node.a2a.jsonrpc``, ``tasks``, ``taskview``, ``streaming``,
  ``push``: the JSON-RPC endpoint, tasks as executions, streams and pushes.
"""
