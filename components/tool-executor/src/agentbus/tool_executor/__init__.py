"""The tool executor: policy-bound tools for agents, over the bus and over MCP.

``engine`` decides and runs; ``service`` serves it on the bus; ``tools/`` holds
the built-in tools; ``mcp_server`` and ``mcp_import`` connect MCP both ways.
"""
