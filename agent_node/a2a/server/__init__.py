"""The node as an A2A agent others call.

* :mod:`.operations` (with :mod:`.handler`, :mod:`.limits`, :mod:`.bodies`):
  one table of operations, what each takes and which handler method serves
  it, shared by the bindings: :mod:`.jsonrpc`, :mod:`.rest` (HTTP+JSON) and
  :mod:`.grpc`, served by :mod:`.app` (and the gRPC server of its own port).
* :mod:`.tasks` and its ``task_*`` modules, :mod:`.taskview`,
  :mod:`.input_modes`, :mod:`.output_modes`: A2A tasks as durable
  executions, what they take and how they are shown; :mod:`.streaming`,
  :mod:`.sse`: live updates; :mod:`.push`: push notifications to our callers.
* :mod:`.card`: the node's Agent Card; :mod:`.ops`: the operator API.
"""
