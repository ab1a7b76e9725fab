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

from agentbus.framework import key_value
from agentbus.interfaces.catalog.workflows import RunInfo, StepInfo

BUCKET = "agentbus_workflow_runs"
STREAM = f"KV_{BUCKET}"
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
        return [run for run, _ in await self.all_with_revisions()]

    async def all_with_revisions(self) -> list[tuple[RunInfo, int]]:
        """Every run with the revision of its record (for a bounded :meth:`remove_run`)."""
        return [
            (RunInfo.model_validate_json(entry.value or b""), int(entry.revision or 0))
            for entry in await self._entries("run.*")
        ]

    async def keys(self, pattern: str) -> list[str]:
        """The keys matching ``pattern`` (NATS wildcards), sorted, from the bucket stream's
        per-subject state."""
        info = await self._js.stream_info(STREAM, subjects_filter=f"{_PREFIX}{pattern}")
        return sorted(subject[len(_PREFIX) :] for subject in (info.state.subjects or {}))

    async def _values(self, pattern: str) -> list[bytes]:
        return [entry.value or b"" for entry in await self._entries(pattern)]

    async def _entries(self, pattern: str) -> list[KeyValue.Entry]:
        """Current entries of the keys matching ``pattern`` (deleted ones left out).

        The keys come from the bucket stream's per-subject state, then each is read: a
        KV watch would do it in one pass, but its end-of-data marker can arrive before
        entries already on their way, and a missing step would make a run diverge.
        """
        keys = await self.keys(pattern)
        found: list[KeyValue.Entry] = []
        for start in range(0, len(keys), 64):
            chunk = keys[start : start + 64]
            entries = await asyncio.gather(*(self._get(key) for key in chunk))
            found += [entry for entry in entries if entry is not None]
        return found

    async def _get(self, key: str) -> KeyValue.Entry | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # deleted
            return None
        return entry if entry.value else None

    async def remove_run(self, run_id: str, revision: int, approval_keys: list[str]) -> None:
        """Remove a run's steps, the given approval keys and then its record, from the
        bucket stream itself (no delete markers stay behind).

        Only messages up to ``revision`` (the run record's, read when the run was found to
        be over) are removed: a run created again with the same id afterwards, and its
        steps, are newer and stay. The record goes last, so a removal interrupted midway is
        found again and finished by the next one; removing what is gone already is a no-op.
        """
        for key in [f"step.{run_id}.*", *approval_keys, _run_key(run_id)]:
            await self._js.purge_stream(STREAM, seq=revision + 1, subject=f"{_PREFIX}{key}")

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

    async def step_keys(self, run_id: str) -> list[str]:
        return await self.keys(f"step.{run_id}.*")

    async def steps(self, run_id: str) -> list[StepInfo]:
        steps = [StepInfo.model_validate_json(v) for v in await self._values(f"step.{run_id}.*")]
        return sorted(steps, key=lambda s: s.index)

    # -- approvals ---------------------------------------------------------------------

    async def remember_approval(self, approval_id: str, run_id: str) -> None:
        await self.kv.put(f"approval.{approval_id}", run_id.encode())

    async def approvals(self) -> dict[str, str]:
        """Every approval key with the run id it points to."""
        return {
            entry.key: (entry.value or b"").decode() for entry in await self._entries("approval.*")
        }

    async def run_for_approval(self, approval_id: str) -> str | None:
        try:
            entry = await self.kv.get(f"approval.{approval_id}")
        except (KeyNotFoundError, ValueError):
            return None
        return entry.value.decode() if entry.value else None
