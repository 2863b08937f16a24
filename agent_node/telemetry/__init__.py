"""What a node tells operators about itself: probes, Prometheus metrics,
its log on stderr (text or JSON) and OpenTelemetry traces. Each module is
imported by the node or command that uses it, on first use; nothing here is
imported with ``agent_node``.
"""
