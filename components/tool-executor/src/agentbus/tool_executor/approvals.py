"""Durable approvals in JetStream KV: survive restarts, shared by replicas.

``agentbus_tool_approvals``
    approval id → :class:`Approval`. The id is derived from caller and
    idempotency key, so a retried call finds its approval. Status moves
    ``pending`` → ``approved`` | ``denied`` (:meth:`ApprovalStore.decide`, final),
    and ``approved`` → ``executed``; every change is a compare-and-set on the
    entry's revision.

Run-once by idempotency key is the other bucket, in :mod:`~agentbus.tool_executor.ledger`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from agentbus.framework import key_value
from agentbus.interfaces.catalog.tools import Approval, ApprovalStatus
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.errors import Refused, ToolFailed

APPROVALS_BUCKET = "agentbus_tool_approvals"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def digest(arguments: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the arguments."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def hashed_key(*parts: str) -> str:
    """A short, KV-safe key naming ``parts`` (sha256, 32 hex digits)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]


def approval_id(caller: str, idempotency_key: str) -> str:
    return hashed_key("approval", caller, idempotency_key)


class ApprovalStore:
    """Approvals by id, with compare-and-set transitions."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> ApprovalStore:
        return cls(await key_value(js, APPROVALS_BUCKET))

    async def get(self, approval: str) -> tuple[Approval, int] | None:
        try:
            entry = await self.kv.get(approval)
        except (KeyNotFoundError, ValueError):  # ValueError: not a valid key at all
            return None
        if entry.value is None:
            return None
        return Approval.model_validate_json(entry.value), int(entry.revision or 0)

    async def create(self, approval: Approval) -> tuple[Approval, bool]:
        """Store a new pending approval; returns the stored one and whether it is new."""
        try:
            await self.kv.create(approval.approval_id, approval.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            found = await self.get(approval.approval_id)
            if found is None:  # deleted in between: very unlikely, try once more
                await self.kv.put(approval.approval_id, approval.model_dump_json().encode())
                return approval, True
            return found[0], False
        return approval, True

    async def transition(
        self, approval: str, allowed_from: tuple[ApprovalStatus, ...], **changes: Any
    ) -> Approval | None:
        """Apply ``changes`` if the approval is in one of ``allowed_from``; CAS on revision."""
        for _ in range(5):
            found = await self.get(approval)
            if found is None:
                return None
            current, revision = found
            if current.status not in allowed_from:
                return current
            updated = current.model_copy(update=changes)
            try:
                await self.kv.update(approval, updated.model_dump_json().encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone else changed it: read again
            return updated
        raise RuntimeError(f"approval {approval} keeps changing; try again")

    async def decide(
        self,
        approval: str,
        decision: Literal["approve", "deny"],
        *,
        decided_by: str,
        decider: str,
        note: str | None = None,
    ) -> Approval:
        """Approve or deny a pending approval, once: ``decider`` (the sending component) may
        not be the caller that asked, and a decided approval stays as it is (``conflict``)."""
        found = await self.get(approval)
        if found is None:
            raise ToolFailed(
                f"no approval {approval}; `agentbus approvals list` shows them",
                code=ErrorCode.NOT_FOUND,
            )
        if decider == found[0].caller:
            raise Refused("a caller cannot decide its own approval")
        changes: dict[str, Any] = {
            "status": "approved" if decision == "approve" else "denied",
            "decided_by": decided_by,
            "decided_at": now(),
            "note": note,
        }
        updated = await self.transition(approval, ("pending",), **changes)
        if (
            updated is None
            or updated.status != changes["status"]
            or updated.decided_at != changes["decided_at"]
        ):
            status = updated.status if updated else "gone"
            raise ToolFailed(
                f"approval {approval} is already {status}; decisions are final",
                code=ErrorCode.CONFLICT,
                status=status,
            )
        return updated

    async def withdraw(
        self, approval: str, *, withdrawer: str, relays: tuple[str, ...], reason: str
    ) -> Approval:
        """The caller that asked (or a relay that asks for callers) takes its pending
        approval back: ``denied``, decided by it, ``reason`` as the note. Anyone else is
        refused; an approval decided already is a ``conflict``."""
        found = await self.get(approval)
        if found is None:
            raise ToolFailed(f"no approval {approval}", code=ErrorCode.NOT_FOUND)
        if withdrawer != found[0].caller and withdrawer not in relays:
            raise Refused(
                f"only {found[0].caller!r} (or a relay of the executor) may withdraw this "
                "approval; a person decides it with `agentbus approvals deny`"
            )
        stamp = now()
        updated = await self.transition(
            approval,
            ("pending",),
            status="denied",
            decided_by=f"{withdrawer} (withdrawn)",
            decided_at=stamp,
            note=reason,
        )
        if updated is None or updated.decided_at != stamp:
            status = updated.status if updated else "gone"
            raise ToolFailed(
                f"approval {approval} is already {status}", code=ErrorCode.CONFLICT, status=status
            )
        return updated

    async def list(self, status: ApprovalStatus | None = None) -> list[Approval]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        approvals = []
        for key in keys:
            found = await self.get(key)
            if found is not None and (status is None or found[0].status == status):
                approvals.append(found[0])
        return sorted(approvals, key=lambda a: a.requested_at)
