"""The tool executor: policy-bound tools for agents, over the bus and over MCP.

``engine`` decides and runs; ``service`` serves it on the bus; ``approvals`` and
``ledger`` keep its durable state; ``tools/`` holds the built-in tools;
``mcp_server`` and ``mcp_import`` connect MCP both ways. The README's "Modules"
table lists every module.
"""
