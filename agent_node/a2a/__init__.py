"""The A2A edge of a node.

* ``agent_node.a2a.card``: the node's Agent Card, built from its
  configuration and hosted workflows, with its ETag.
* ``agent_node.a2a.app``: the Starlette application serving it.
"""
