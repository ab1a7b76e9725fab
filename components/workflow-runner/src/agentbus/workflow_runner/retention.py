"""Retention: remove runs that ended long ago, with their steps and approval keys.

The one implementation behind the runner's periodic sweep (``AGENTBUS_RUNNER_RETENTION_*``,
:func:`sweep_forever`) and ``agentbus runs purge``. A run is removed when its status is
terminal (finished, failed, cancelled) and its record last changed (when it ended: an
ended run is never changed again) before the cutoff. Queued, running and waiting runs
stay, however old. Several replicas may sweep at once: removing what another removed is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from agentbus.interfaces.catalog.workflows import TERMINAL, RunInfo
from agentbus.workflow_runner.store import RunStore

log = logging.getLogger("agentbus.workflow_runner.retention")
Item = TypeVar("Item")
T = TypeVar("T")

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds from ``3600``, ``90s``, ``30m``, ``12h`` or ``7d``; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: give seconds (3600) or a number with s, m, h or d "
            "(90s, 30m, 12h, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class ExpiredRun:
    """An ended run past the retention, and what removing it removes."""

    run: RunInfo
    revision: int
    ended_at: datetime
    step_keys: tuple[str, ...]
    approval_keys: tuple[str, ...]


def ended_at(run: RunInfo) -> datetime | None:
    """When an ended run ended (its last change); ``None`` if it has not ended."""
    if run.status not in TERMINAL:
        return None
    try:
        stamp = datetime.fromisoformat(run.updated_at)
    except ValueError:
        log.warning("run %s has an unreadable updated_at %r; kept", run.run_id, run.updated_at)
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


async def find_expired(
    store: RunStore, older_than: float, *, now: datetime | None = None
) -> list[ExpiredRun]:
    """Runs that ended more than ``older_than`` seconds before ``now``, oldest first."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than)
    ended = [
        (run, revision, stamp)
        for run, revision in await store.all_with_revisions()
        if (stamp := ended_at(run)) is not None and stamp < cutoff
    ]
    if not ended:
        return []
    by_run: dict[str, list[str]] = {}
    for key, run_id in (await store.approvals()).items():
        by_run.setdefault(run_id, []).append(key)
    steps = await _in_chunks(store.step_keys, [run.run_id for run, _, _ in ended])
    expired = [
        ExpiredRun(
            run=run,
            revision=revision,
            ended_at=stamp,
            step_keys=tuple(step_keys),
            approval_keys=tuple(sorted(by_run.get(run.run_id, []))),
        )
        for (run, revision, stamp), step_keys in zip(ended, steps, strict=True)
    ]
    return sorted(expired, key=lambda e: e.ended_at)


async def remove(store: RunStore, expired: Sequence[ExpiredRun]) -> None:
    """Remove the runs ``find_expired`` returned."""

    async def one(run: ExpiredRun) -> None:
        await store.remove_run(run.run.run_id, run.revision, list(run.approval_keys))

    await _in_chunks(one, expired)


async def sweep(
    store: RunStore, older_than: float, *, now: datetime | None = None, dry_run: bool = False
) -> list[ExpiredRun]:
    """Find the runs past the retention and (unless ``dry_run``) remove them."""
    expired = await find_expired(store, older_than, now=now)
    if not dry_run:
        await remove(store, expired)
    return expired


async def sweep_forever(store: RunStore, older_than: float, interval: float) -> None:
    """Remove runs past the retention now and every ``interval`` seconds, until cancelled;
    a failed sweep (the bus down, the server restarting) is logged and tried next time."""
    while True:
        try:
            removed = await sweep(store, older_than)
        except Exception as exc:
            log.warning("the retention sweep failed (%r); next one in %gs", exc, interval)
        else:
            if removed:
                log.info(
                    "retention: removed %d run(s) and %d step(s) that ended over %gs ago",
                    len(removed),
                    sum(len(r.step_keys) for r in removed),
                    older_than,
                )
        await asyncio.sleep(interval)


async def _in_chunks(
    call: Callable[[Item], Awaitable[T]], items: Sequence[Item], size: int = 16
) -> list[T]:
    """``call`` on each item, ``size`` at a time (a large bucket must not flood the server)."""
    results: list[T] = []
    for start in range(0, len(items), size):
        results += await asyncio.gather(*(call(item) for item in items[start : start + size]))
    return results
