"""Decisions on the audit stream: ``agentbus.audit.<component>.decision``."""

from __future__ import annotations

from datetime import UTC, datetime

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from agentbus.framework import AUDIT, Bus, to_json
from agentbus.interfaces.catalog.maintenance import MaintainerDecision
from agentbus.interfaces.metadata import MSG_ID, new_id
from agentbus.interfaces.subjects import AUDIT as AUDIT_PREFIX
from agentbus.interfaces.subjects import audit_subject

DECISION = "decision"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def decision_subject(component: str | None) -> str:
    """One component's decisions, or every component's (``None``)."""
    return audit_subject(component, DECISION) if component else f"{AUDIT_PREFIX}.*.{DECISION}"


async def record(bus: Bus, decision: MaintainerDecision) -> None:
    """Publish ``decision`` durably (de-duplicated on its id)."""
    await bus.js.publish(
        decision_subject(decision.component),
        to_json(decision),
        headers={MSG_ID: decision.id},
        stream=AUDIT.name,
    )


def new_decision_id() -> str:
    return new_id()


async def read_decisions(
    bus: Bus, component: str | None = None, *, limit: int = 1000
) -> list[MaintainerDecision]:
    """The stored decisions, oldest first (the newest ``limit``)."""
    try:
        subscription = await bus.js.pull_subscribe(
            decision_subject(component),
            stream=AUDIT.name,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
    except NotFoundError:  # no service ever declared the audit stream: nothing recorded
        return []
    found: list[MaintainerDecision] = []
    try:
        while True:
            try:
                batch = await subscription.fetch(256, timeout=0.3)
            except nats.errors.TimeoutError:
                break
            found += [MaintainerDecision.model_validate_json(m.data, extra="ignore") for m in batch]
    finally:
        await subscription.unsubscribe()
    return found[-limit:]
