"""What a node tells operators about itself: probes, Prometheus metrics,
JSON logs and OpenTelemetry traces. Each module is imported by the node
that uses it, on first use; nothing here is imported with ``agent_node``.
"""
