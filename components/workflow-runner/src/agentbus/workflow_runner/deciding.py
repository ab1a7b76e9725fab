"""Deciding a run's pending approvals: the operator's half of ``agentbus runs resume``.

The runner does not decide approvals. The tool calls of its runs are made by its own
identity, and a caller never decides its own call: were the runner allowed to decide,
any workflow it runs could approve what it asked for. So whoever may decide (the
operator, at the CLI) asks the tool executor directly (``tools.approvals.decide``), and
the executor's ``tools.approval.decided`` event continues the run on some replica.
"""

from __future__ import annotations

from collections.abc import Mapping

from agentbus.framework import Bus, ConfigError, RemoteError
from agentbus.interfaces.catalog.tools import APPROVALS_DECIDE, DecideRequest
from agentbus.interfaces.catalog.workflows import RunInfo
from agentbus.interfaces.error_reply import ErrorCode

REFUSED = (
    "the workflow runner does not decide approvals (its runs' tool calls are its own, and a "
    "caller never decides its own call): decide each pending call with tools.approvals.decide "
    "as the operator (`agentbus runs resume {run_id} --approve <call id>` does), and the run "
    "continues by itself"
)


async def decide_pending(
    bus: Bus,
    run: RunInfo,
    decisions: Mapping[str, str],
    *,
    decided_by: str,
    note: str | None = None,
) -> dict[str, str]:
    """Decide ``decisions`` (tool-call id -> ``approve``/``deny``) of ``run``'s pending
    approvals as ``bus``'s identity; returns each call's approval status afterwards."""
    if run.status != "waiting_approval":
        raise ConfigError(f"run {run.run_id} is {run.status}: it waits for no approval")
    pending = {p.tool_call_id: p for p in run.pending_approvals}
    unknown = sorted(set(decisions) - set(pending))
    if unknown:
        raise ConfigError(
            f"run {run.run_id} waits for no tool call {', '.join(unknown)}; pending: "
            f"{', '.join(sorted(pending)) or 'none'}"
        )
    statuses: dict[str, str] = {}
    for call_id, decision in decisions.items():
        request = DecideRequest.model_validate(
            {
                "approval_id": pending[call_id].approval_id,
                "decision": decision,
                "decided_by": decided_by,
                "note": note,
            }
        )
        try:
            reply = await bus.request(APPROVALS_DECIDE, request)
        except RemoteError as exc:
            if exc.code != ErrorCode.CONFLICT:  # conflict: decided already, which is fine
                raise
            statuses[call_id] = str(exc.details.get("status", "decided"))
            continue
        statuses[call_id] = reply.approval.status
    return statuses


__all__ = ["REFUSED", "decide_pending"]
