"""Audit records (``tools.execution.audited``) and approval escalations, published durably.

Audit records go to ``agentbus.audit.tool-executor.execution`` (stream
``AGENTBUS_AUDIT``), approval requests to ``agentbus.escalations.tool-executor``
(stream ``AGENTBUS_ESCALATIONS``), both with the usual ``Agentbus`` metadata
header naming their interface, so ``agentbus events tail`` and any consumer
can decode them with the catalog.
"""

from __future__ import annotations

import logging

from agentbus.framework import AUDIT, ESCALATIONS, Bus, to_json
from agentbus.interfaces.catalog.tools import (
    APPROVAL_REQUESTED,
    EXECUTION_AUDITED,
    Approval,
    ExecutionAudit,
)
from agentbus.interfaces.metadata import Metadata
from agentbus.interfaces.subjects import audit_subject, escalation_subject

COMPONENT = "tool-executor"
AUDIT_SUBJECT = audit_subject(COMPONENT, "execution")
ESCALATION_SUBJECT = escalation_subject(COMPONENT)

log = logging.getLogger("agentbus.tool_executor.audit")


async def publish_audit(bus: Bus, record: ExecutionAudit, cause: Metadata | None = None) -> None:
    meta = bus.metadata(EXECUTION_AUDITED, cause)
    try:
        await bus.js.publish(
            AUDIT_SUBJECT, to_json(record), headers=meta.to_headers(dedupe=True), stream=AUDIT.name
        )
    except Exception:  # the call itself already happened; losing the record must be loud
        log.exception("could not publish the audit record of %s for %s", record.tool, record.caller)


async def publish_escalation(bus: Bus, approval: Approval, cause: Metadata | None = None) -> None:
    meta = bus.metadata(APPROVAL_REQUESTED, cause)
    await bus.js.publish(
        ESCALATION_SUBJECT,
        to_json(approval),
        headers=meta.to_headers(dedupe=True),
        stream=ESCALATIONS.name,
    )
