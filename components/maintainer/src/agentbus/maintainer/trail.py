"""The decision records of one event: what was decided at each stage, and what came of it.

Record ids derive from the event's id, the component, the stage and the outcome,
so a redelivered event writes the same records again (the audit stream drops the
duplicates) instead of new ones.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from agentbus.interfaces.catalog.maintenance import MaintainerDecision
from agentbus.maintainer.audit import now
from agentbus.maintainer.rules import Decision

log = logging.getLogger("agentbus.maintainer")

Record = Callable[[MaintainerDecision], Awaitable[None]]
"""Stores one decision record (on the bus: ``audit.record`` bound to a bus)."""


def stable_id(*parts: str) -> str:
    """An id derived from its parts: a redelivered event makes the same records."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]


class Trail:
    """Writes one event's decision records for ``component`` (logged as ``maintainer``)."""

    def __init__(
        self,
        record: Record,
        *,
        maintainer: str,
        component: str,
        event: str,
        event_id: str,
        summary: str,
    ) -> None:
        self._record = record
        self.maintainer = maintainer
        self.component = component
        self.event = event
        self.event_id = event_id
        self.summary = summary

    async def record(
        self, decision: Decision, stage: str, outcome: str, details: dict[str, Any] | None = None
    ) -> MaintainerDecision:
        entry = MaintainerDecision(
            id=stable_id(self.event_id, self.component, stage, outcome),
            component=self.component,
            event=self.event,
            event_id=self.event_id,
            summary=self.summary,
            action=decision.action,
            reason=decision.reason,
            rule=decision.rule,
            outcome=outcome,
            details=jsonable(details or {}),
            at=now(),
        )
        await self._record(entry)
        log.info(
            "%s: %s -> %s/%s (%s) %s",
            self.maintainer,
            self.summary,
            decision.action,
            outcome,
            decision.rule,
            decision.reason,
        )
        return entry


def jsonable(value: Any) -> Any:
    """``value`` with every pydantic model in it dumped to JSON-compatible data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
