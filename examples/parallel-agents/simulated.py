"""A simulated agent: the real maintainer service, with a slower evaluation.

``think`` seconds are spent before each decision, standing in for a model that takes
its time (the seed's agents take 2 min, 30 s and 1 min; this example divides by 60).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from agentbus.framework import Settings
from agentbus.maintainer.rules import Decision, Facts
from agentbus.maintainer.service import Event, Maintainer

COMPONENTS = Path(__file__).resolve().parent / "components"


class SimulatedMaintainer(Maintainer):
    """A maintainer whose every evaluation takes ``think`` seconds."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        component: str,
        think: float = 1.0,
        autonomous: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, component_dir=COMPONENTS / component, **kwargs)
        self.think = think
        config = {**self.component.config, "autonomy": "autonomous" if autonomous else "observe"}
        self.component = dataclasses.replace(self.component, config=config)

    async def decide(self, event: Event, facts: Facts) -> Decision:
        await asyncio.sleep(self.think)
        return await super().decide(event, facts)
