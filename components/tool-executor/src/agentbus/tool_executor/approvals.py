"""Durable approval and run state in JetStream KV: survives restarts, shared by replicas.

Two buckets:

``agentbus_tool_approvals``
    approval id → :class:`Approval`. The id is derived from caller and
    idempotency key, so a retried call finds its approval. Status moves
    ``pending`` → ``approved`` | ``denied``, and ``approved`` → ``executed``;
    every change is a compare-and-set on the entry's revision.
``agentbus_tool_runs``
    run key (caller + idempotency key) → the run's state and result. A run is
    claimed with ``create`` (which fails if the key exists), so of two replicas
    retrying the same approved call, exactly one runs it; later retries replay
    the stored result.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, JsonValue

from agentbus.framework.jetstream import key_value
from agentbus.interfaces.catalog.tools import Approval, ApprovalStatus, Completed

APPROVALS_BUCKET = "agentbus_tool_approvals"
RUNS_BUCKET = "agentbus_tool_runs"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def digest(arguments: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the arguments."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]


def approval_id(caller: str, idempotency_key: str) -> str:
    return _key("approval", caller, idempotency_key)


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


class RunRecord(BaseModel):
    """One idempotent run: claimed, then done with its result or its error."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "done"]
    arguments_digest: str
    result: Completed | None = None
    error: dict[str, JsonValue] | None = None


class RunStore:
    """Run-once bookkeeping keyed by caller and idempotency key."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> RunStore:
        return cls(await key_value(js, RUNS_BUCKET))

    @staticmethod
    def key(caller: str, idempotency_key: str) -> str:
        return _key("run", caller, idempotency_key)

    async def claim(self, key: str, arguments_digest: str) -> RunRecord | None:
        """``None`` when this caller now owns the run; else the existing record."""
        record = RunRecord(state="running", arguments_digest=arguments_digest)
        try:
            await self.kv.create(key, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                return await self.claim(key, arguments_digest)
            return RunRecord.model_validate_json(entry.value or b"{}")
        return None

    async def finish(self, key: str, record: RunRecord) -> None:
        await self.kv.put(key, record.model_dump_json().encode())
