"""``agent-node demo``: a network of three agents on this machine.

A coordinator, a researcher and a writer (``examples/network/``), each its
own ``agent-node serve`` process with its own certificate, card and SQLite
store, talking A2A over mutual TLS. :mod:`.network` prepares and runs them;
:mod:`.models` picks the model (Ollama when one answers, else the offline
scripted model); the command and its live view are in
:mod:`agent_node.cli.demo`.
"""
