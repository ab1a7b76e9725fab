"""The built-in tools, one module per family."""

from __future__ import annotations

from agentbus.tool_executor.declaration import Tool
from agentbus.tool_executor.tools import fs, git, http, pytest_tool, shell

BUILTIN: tuple[Tool, ...] = (*fs.TOOLS, *shell.TOOLS, *http.TOOLS, *git.TOOLS, *pytest_tool.TOOLS)

__all__ = ["BUILTIN"]
