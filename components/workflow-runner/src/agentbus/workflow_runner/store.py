"""Durable run state in one JetStream KV bucket, ``agentbus_workflow_runs``.

======================================  ==================================================
key                                     value
======================================  ==================================================
``run.<run_id>``                        :class:`RunInfo` without steps; changed by
                                        compare-and-set on the entry's revision
``step.<run_id>.<index, 6 digits>``     :class:`StepInfo`; written with ``create``, so a
                                        step is recorded once: a second writer (a replica
                                        that lost its lease) is refused and stops
``approval.<approval_id>``              the run id waiting for that approval
======================================  ==================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agentbus.framework.jetstream import key_value
from agentbus.interfaces.catalog.workflows import RunInfo, StepInfo

BUCKET = "agentbus_workflow_runs"
_PREFIX = f"$KV.{BUCKET}."


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _run_key(run_id: str) -> str:
    return f"run.{run_id}"


def _step_key(run_id: str, index: int) -> str:
    return f"step.{run_id}.{index:06d}"


class StepConflict(Exception):
    """The step was already recorded (by another replica)."""


class RunStore:
    """Runs, their steps and the approvals they wait for."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> RunStore:
        return cls(js, await key_value(js, BUCKET, history=1))

    # -- runs --------------------------------------------------------------------------

    async def create(self, run: RunInfo) -> tuple[RunInfo, bool]:
        """Store a new run; returns the stored run and whether it is new."""
        try:
            await self.kv.create(_run_key(run.run_id), run.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            found = await self.get(run.run_id)
            if found is not None:
                return found[0], False
            await self.kv.put(_run_key(run.run_id), run.model_dump_json().encode())
        return run, True

    async def get(self, run_id: str) -> tuple[RunInfo, int] | None:
        try:
            entry = await self.kv.get(_run_key(run_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return RunInfo.model_validate_json(entry.value), int(entry.revision or 0)

    async def update(self, run_id: str, change: Callable[[RunInfo], RunInfo | None]) -> RunInfo:
        """Apply ``change`` by compare-and-set; ``change`` returns ``None`` to leave it as is."""
        for _ in range(50):
            found = await self.get(run_id)
            if found is None:
                raise KeyError(run_id)
            current, revision = found
            updated = change(current)
            if updated is None:
                return current
            updated = updated.model_copy(update={"updated_at": now()})
            try:
                await self.kv.update(
                    _run_key(run_id), updated.model_dump_json().encode(), last=revision
                )
            except KeyWrongLastSequenceError:
                continue  # changed in between: read again
            return updated
        raise RuntimeError(f"run {run_id} keeps changing under concurrent updates; retry")

    async def all(self) -> list[RunInfo]:
        return [RunInfo.model_validate_json(value) for value in await self._values("run.*")]

    async def _values(self, pattern: str) -> list[bytes]:
        """Current values of the keys matching ``pattern``.

        The keys come from the bucket stream's per-subject state, then each is read: a
        KV watch would do it in one pass, but its end-of-data marker can arrive before
        entries already on their way, and a missing step would make a run diverge.
        """
        info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"{_PREFIX}{pattern}")
        keys = sorted(subject[len(_PREFIX) :] for subject in (info.state.subjects or {}))
        values: list[bytes] = []
        for start in range(0, len(keys), 64):
            chunk = keys[start : start + 64]
            entries = await asyncio.gather(*(self._get(key) for key in chunk))
            values += [entry for entry in entries if entry]
        return values

    async def _get(self, key: str) -> bytes | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # deleted
            return None
        return entry.value or None

    # -- steps -------------------------------------------------------------------------

    async def record_step(self, run_id: str, step: StepInfo) -> None:
        """Persist a step once; :class:`StepConflict` if it is already recorded."""
        try:
            await self.kv.create(_step_key(run_id, step.index), step.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            raise StepConflict(step.idempotency_key) from None

    async def has_step(self, run_id: str, index: int) -> bool:
        try:
            await self.kv.get(_step_key(run_id, index))
        except KeyNotFoundError:
            return False
        return True

    async def steps(self, run_id: str) -> list[StepInfo]:
        steps = [StepInfo.model_validate_json(v) for v in await self._values(f"step.{run_id}.*")]
        return sorted(steps, key=lambda s: s.index)

    # -- approvals ---------------------------------------------------------------------

    async def remember_approval(self, approval_id: str, run_id: str) -> None:
        await self.kv.put(f"approval.{approval_id}", run_id.encode())

    async def run_for_approval(self, approval_id: str) -> str | None:
        try:
            entry = await self.kv.get(f"approval.{approval_id}")
        except (KeyNotFoundError, ValueError):
            return None
        return entry.value.decode() if entry.value else None
