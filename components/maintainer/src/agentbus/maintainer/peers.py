"""What the maintainer's pipeline asks of other services: a protocol, and the bus behind it.

The model gateway decides (``ask-model``) and says whether a model is configured,
the workflow runner changes code after an approval, and the deployments record
says when the component was last promoted (the cooldown). :class:`BusPeers` asks
them over the bus; a test can hand the pipeline anything with the same methods.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from agentbus.framework import Bus
from agentbus.interfaces.catalog.maintenance import Escalation
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.decide import ask_model
from agentbus.maintainer.deployers import current_deployment
from agentbus.maintainer.flows.change import ChangeReport
from agentbus.maintainer.flows.code_change import change_code, model_configured
from agentbus.maintainer.rules import Decision, Facts


class Peers(Protocol):
    """The other services, as the pipeline needs them."""

    async def ask_model(
        self, component: ComponentContext, facts: Facts, event_json: str
    ) -> Decision: ...

    async def model_configured(self, alias: str) -> bool: ...

    async def change_code(
        self, component: ComponentContext, escalation: Escalation, decision: Decision
    ) -> ChangeReport: ...

    async def last_promoted_at(self, component: str) -> datetime | None: ...


class BusPeers:
    """:class:`Peers` over the bus: the gateway, the workflow runner, the deployments KV."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def ask_model(
        self, component: ComponentContext, facts: Facts, event_json: str
    ) -> Decision:
        return await ask_model(self._bus, component, facts, event_json)

    async def model_configured(self, alias: str) -> bool:
        return await model_configured(self._bus, alias)

    async def change_code(
        self, component: ComponentContext, escalation: Escalation, decision: Decision
    ) -> ChangeReport:
        return await change_code(self._bus, component, escalation, decision)

    async def last_promoted_at(self, component: str) -> datetime | None:
        record = await current_deployment(self._bus, component)
        if record is None or not record.updated_at:
            return None
        return datetime.fromisoformat(record.updated_at)
