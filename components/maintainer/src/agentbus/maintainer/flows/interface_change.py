"""``interface.changed`` (compatible): move the pinned interface version, run the contract
tests on both versions, commit.

The pin lives in ``context/context.json`` (``interfaces.provides`` /
``interfaces.consumes``): an exact version becomes the new one, a range's lower
bound moves to it. Breaking changes never reach this module: they escalate, and
after approval a code-change workflow (or a person) edits the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from agentbus.interfaces.catalog.system import InterfaceChanged
from agentbus.maintainer.context import CONTEXT_FILE, ComponentContext
from agentbus.maintainer.flows.change import ChangeReport, attempt_change
from agentbus.maintainer.rules import Decision

_EXACT_RE = re.compile(r"^\d+\.\d+\.\d+$")
_LOWER_RE = re.compile(r">=\s*\d+\.\d+\.\d+")


def moved_pin(pin: str, new: str) -> str:
    if _EXACT_RE.match(pin.strip()):
        return new
    if _LOWER_RE.search(pin):
        return _LOWER_RE.sub(f">={new}", pin, count=1)
    return f">={new},{pin}" if pin.strip() else new


def move_pin(component_dir: Path, interface: str, new: str) -> bool:
    """Move every pin of ``interface`` in context.json to ``new``; whether anything changed."""
    path = component_dir / "context" / CONTEXT_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    for relation in ("provides", "consumes"):
        for ref in document["interfaces"][relation]:
            if ref["name"] == interface:
                moved = moved_pin(ref["version"], new)
                changed = changed or moved != ref["version"]
                ref["version"] = moved
    if changed:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return changed


async def adopt_interface(
    component: ComponentContext, event: InterfaceChanged, decision: Decision
) -> ChangeReport:
    """Pin ``event.new_version`` in a worktree and run the tests on both versions."""

    async def edit(component_dir: Path) -> list[Path]:
        move_pin(component_dir, event.interface, event.new_version)
        return [component_dir / "context" / CONTEXT_FILE]

    return await attempt_change(
        component,
        title=(
            f"{component.name}: adopt {event.interface} {event.old_version} -> "
            f"{event.new_version} ({event.compatibility})"
        ),
        branch_slug=f"{event.interface}-{event.new_version}",
        edit=edit,
        decision=decision,
        relock=None,
    )
