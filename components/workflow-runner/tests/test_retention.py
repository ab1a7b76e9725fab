"""Retention: runs that ended long ago leave the KV bucket with their steps and approval keys.

Runs are recorded as the runner records them (the run, then its steps and approvals, then
the record of how it ended), except that the end time is written as the test needs it:
the store stamps ``updated_at`` with the current time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from runner_helpers import agentbus

from agentbus.framework import Bus
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.workflows import RunInfo, RunStatus, StepInfo
from agentbus.workflow_runner.retention import find_expired, parse_duration, remove, sweep
from agentbus.workflow_runner.service import WorkflowRunner
from agentbus.workflow_runner.settings import RunnerSettings
from agentbus.workflow_runner.store import RunStore

WEEK = 7 * 24 * 3600.0
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)
RECENT = NOW - timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


async def record_run(
    store: RunStore,
    run_id: str,
    status: RunStatus,
    ended: datetime,
    *,
    steps: int = 2,
    approvals: tuple[str, ...] = (),
) -> None:
    """A run with ``steps`` steps and ``approvals`` approval keys, last changed at ``ended``."""
    start = iso(ended - timedelta(minutes=5))
    run = RunInfo(
        run_id=run_id, workflow="tool_loop", status="queued", created_at=start, updated_at=start
    )
    await store.create(run)
    for index in range(steps):
        step = StepInfo(
            index=index,
            name="model",
            kind="model",
            idempotency_key=f"{run_id}:{index}",
            started_at=start,
            duration_ms=1.0,
            result={"text": "hi"},
        )
        await store.record_step(run_id, step)
    for approval in approvals:
        await store.remember_approval(approval, run_id)
    last = run.model_copy(update={"status": status, "updated_at": iso(ended)})
    await store.kv.put(f"run.{run_id}", last.model_dump_json().encode())


async def keys_of(store: RunStore, run_id: str) -> list[str]:
    """Every key in the bucket stream that belongs to ``run_id`` (delete markers included)."""
    approvals = {key for key, owner in (await store.approvals()).items() if owner == run_id}
    return [
        key
        for key in await store.keys(">")
        if key == f"run.{run_id}" or key.startswith(f"step.{run_id}.") or key in approvals
    ]


@pytest.fixture
async def store(bus: Bus) -> RunStore:
    return await RunStore.open(bus.js)


async def test_old_ended_runs_go_with_their_steps_and_approval_keys(store: RunStore) -> None:
    await record_run(store, "old-finished", "finished", OLD, steps=3, approvals=("a-1",))
    await record_run(store, "old-failed", "failed", OLD, steps=1)
    await record_run(store, "old-cancelled", "cancelled", OLD, steps=0)
    await record_run(store, "recent", "finished", RECENT, steps=2, approvals=("a-2",))

    removed = await sweep(store, WEEK)

    assert sorted((r.run.run_id, len(r.step_keys), r.approval_keys) for r in removed) == [
        ("old-cancelled", 0, ()),
        ("old-failed", 1, ()),
        ("old-finished", 3, ("approval.a-1",)),
    ]
    # gone from the stream itself, delete markers included: the bucket shrinks
    assert await store.keys(">") == [
        "approval.a-2",
        "run.recent",
        "step.recent.000000",
        "step.recent.000001",
    ]
    assert await store.get("old-finished") is None
    assert await store.steps("old-finished") == []
    assert await store.run_for_approval("a-1") is None


async def test_unfinished_runs_stay_however_old(store: RunStore) -> None:
    ancient = NOW - timedelta(days=365)
    await record_run(store, "queued", "queued", ancient, steps=0)
    await record_run(store, "running", "running", ancient, steps=2)
    await record_run(store, "waiting", "waiting_approval", ancient, steps=1, approvals=("a-w",))
    await record_run(store, "ended", "finished", ancient)

    removed = await sweep(store, WEEK)

    assert [r.run.run_id for r in removed] == ["ended"]
    for run_id, count in (("queued", 1), ("running", 3), ("waiting", 3)):
        assert len(await keys_of(store, run_id)) == count, run_id
    assert await store.run_for_approval("a-w") == "waiting"


async def test_a_recent_run_stays_until_it_is_past_the_retention(store: RunStore) -> None:
    await record_run(store, "recent", "finished", RECENT)

    assert await sweep(store, WEEK) == []
    assert len(await keys_of(store, "recent")) == 3

    removed = await sweep(store, WEEK, now=NOW + timedelta(days=7))
    assert [r.run.run_id for r in removed] == ["recent"]
    assert await keys_of(store, "recent") == []


async def test_a_dry_run_removes_nothing(store: RunStore) -> None:
    await record_run(store, "old", "finished", OLD)

    found = await sweep(store, WEEK, dry_run=True)

    assert [(r.run.run_id, r.step_keys) for r in found] == [
        ("old", ("step.old.000000", "step.old.000001"))
    ]
    assert len(await keys_of(store, "old")) == 3


async def test_sweeps_at_once_and_again_are_harmless(store: RunStore) -> None:
    for number in range(5):
        await record_run(store, f"old-{number}", "failed", OLD, approvals=(f"a-{number}",))
    expired = await find_expired(store, WEEK)
    assert len(expired) == 5

    await asyncio.gather(sweep(store, WEEK), sweep(store, WEEK), remove(store, expired))
    await remove(store, expired)  # a replica late with what it found: all gone already

    assert await store.keys(">") == []
    assert await sweep(store, WEEK) == []


async def test_a_run_created_again_with_the_same_id_is_spared(store: RunStore) -> None:
    await record_run(store, "issue-7", "finished", OLD, approvals=("a-old",))
    stale = await find_expired(store, WEEK)
    await remove(store, stale)  # another replica removed it ...
    await record_run(store, "issue-7", "running", NOW, steps=1, approvals=("a-new",))

    await remove(store, stale)  # ... and this one acts on what it found before

    found = await store.get("issue-7")
    assert found is not None
    assert found[0].status == "running"
    assert [s.index for s in await store.steps("issue-7")] == [0]
    assert await store.run_for_approval("a-new") == "issue-7"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600.0), ("90s", 90.0), ("30m", 1800.0), ("12h", 43200.0), ("7d", WEEK)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7x", "d", "-1d", "1 week"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration: give seconds"):
        parse_duration(text)


def test_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = RunnerSettings()
    assert (defaults.retention_seconds, defaults.retention_sweep_interval) == (WEEK, 3600.0)
    monkeypatch.setenv("AGENTBUS_RUNNER_RETENTION_SECONDS", "0")
    monkeypatch.setenv("AGENTBUS_RUNNER_RETENTION_SWEEP_INTERVAL", "60")
    configured = RunnerSettings()
    assert (configured.retention_seconds, configured.retention_sweep_interval) == (0.0, 60.0)
    with pytest.raises(ValidationError):
        RunnerSettings(retention_seconds=-1)


# -- the CLI ---------------------------------------------------------------------------


async def test_runs_purge_lists_with_dry_run_then_removes(
    store: RunStore, nats_url: str, tmp_path: Path
) -> None:
    await record_run(store, "old-one", "finished", OLD, steps=2, approvals=("a-1",))
    await record_run(store, "new-one", "finished", RECENT)
    await record_run(store, "old-running", "running", OLD)

    code, output = await agentbus(
        nats_url, tmp_path, "runs", "purge", "--older-than", "7d", "--dry-run"
    )
    assert code == 0, output
    assert "old-one" in output
    assert "new-one" not in output
    assert "old-running" not in output
    assert "would remove 1 run(s), 2 step key(s) and 1 approval key(s)" in output
    assert len(await keys_of(store, "old-one")) == 4

    code, output = await agentbus(nats_url, tmp_path, "runs", "purge", "--older-than", "604800")
    assert code == 0, output
    assert "removed 1 run(s), 2 step key(s) and 1 approval key(s)" in output
    assert await keys_of(store, "old-one") == []
    assert len(await keys_of(store, "new-one")) == 3
    assert len(await keys_of(store, "old-running")) == 3

    code, output = await agentbus(nats_url, tmp_path, "runs", "purge", "--older-than", "7d")
    assert code == 0, output
    assert "nothing to remove" in output


@pytest.mark.parametrize(
    ("value", "message"),
    [("7x", "'7x' is not a duration: give seconds"), ("0", "must be more than 0")],
)
async def test_runs_purge_rejects_a_bad_duration(
    store: RunStore, nats_url: str, tmp_path: Path, value: str, message: str
) -> None:
    await record_run(store, "old-one", "finished", OLD)

    code, output = await agentbus(nats_url, tmp_path, "runs", "purge", "--older-than", value)

    assert code == 2, output
    assert message in output
    assert "Traceback" not in output
    assert len(await keys_of(store, "old-one")) == 3


# -- the runner's sweep ----------------------------------------------------------------


async def test_the_runner_sweeps_periodically(start_runner: Any) -> None:
    runner: WorkflowRunner = await start_runner(
        retention_seconds=WEEK, retention_sweep_interval=0.05
    )
    store = runner.store
    await record_run(store, "old-running", "running", OLD)
    await record_run(store, "recent", "finished", RECENT)
    await record_run(store, "old", "finished", OLD)  # after the runner's first sweep

    async def gone() -> bool:
        return await store.get("old") is None

    await eventually(gone, what="the old run removed by the runner")
    assert await keys_of(store, "old") == []
    assert len(await keys_of(store, "old-running")) == 3
    assert len(await keys_of(store, "recent")) == 3

    task = runner.retention_task
    assert task is not None
    await runner.stop()
    assert task.done()


async def test_retention_zero_keeps_runs_forever(start_runner: Any) -> None:
    runner: WorkflowRunner = await start_runner(retention_seconds=0)
    assert runner.retention_task is None
