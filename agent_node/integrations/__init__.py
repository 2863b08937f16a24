"""Adapters to the heavy libraries the model and tool nodes use (litellm, mcp).

Each adapter imports its library on first use, never at ``import agent_node``.
"""
