"""Keeping a run's file, git and test tools inside one folder.

A workflow that edits one component (the maintainer's ``code-change``) gives the
tool loop a root. Every path-like argument (``path``, ``repo``, ``cwd``) of the
tools offered is resolved under it, with symlinks followed; one that leads
outside is refused to the model as a tool error and never reaches the executor,
and a missing one is set to the root (the executor's default would be its own
first root). The executor's policy stays the boundary that enforces; this keeps
a run from even asking for more than its folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentbus.interfaces.catalog.model import ToolDefinition

PATH_KEYS = ("path", "repo", "cwd")


class OutsideRoot(Exception):
    """A tool call asked for a path outside the run's root."""


@dataclass(frozen=True, slots=True)
class Confinement:
    root: Path
    keys: Mapping[str, tuple[str, ...]]
    """Model tool name -> the path arguments it takes."""

    @classmethod
    def of(cls, root: str, definitions: Sequence[ToolDefinition]) -> Confinement:
        keys = {}
        for definition in definitions:
            properties = definition.parameters.get("properties")
            names = properties if isinstance(properties, dict) else {}
            keys[definition.name] = tuple(k for k in PATH_KEYS if k in names)
        return cls(Path(os.path.realpath(root)), keys)

    def apply(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` with every path made absolute under the root, or :class:`OutsideRoot`."""
        confined = dict(arguments)
        for key in self.keys.get(tool, ()):
            value = confined.get(key, ".")
            if not isinstance(value, str) or "\x00" in value:
                raise OutsideRoot(f"{key} must be a path under {self.root}")
            real = Path(os.path.realpath(self.root / value))
            if real != self.root and not real.is_relative_to(self.root):
                raise OutsideRoot(
                    f"{key}={value!r} is outside the folder this run may change ({self.root}); "
                    "use paths under it"
                )
            confined[key] = str(real)
        return confined
