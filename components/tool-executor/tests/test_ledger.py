"""The run-once ledger's leases: a claim whose executor died is taken over by a retry in
seconds (the key is never stuck "running"), a claim that is renewed is not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from agentbus.framework import Bus, Settings
from agentbus.interfaces.catalog.tools import Completed
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.errors import ToolError
from agentbus.tool_executor.ledger import ExecutionLedger

LEASE = 2.0
"""Short for the tests, yet long enough that a renewal (every LEASE / 3) is never late on
a loaded machine."""


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    async with Bus(settings, Source("tool-executor", "pytest")) as bus:
        yield bus


async def ledger(bus: Bus, owner: str) -> ExecutionLedger:
    opened = await ExecutionLedger.open(bus.js, owner=owner)
    opened.lease = LEASE
    return opened


def completed(text: str) -> Completed:
    return Completed(tool="test.tool", content=text, duration_ms=1.0)


class HeldCall:
    """A call of ``ledger`` under ``key`` that runs until :meth:`finish`."""

    def __init__(self, ledger: ExecutionLedger, key: str) -> None:
        self._release = asyncio.Event()
        self._started = asyncio.Event()

        async def slow() -> Completed:
            self._started.set()
            await self._release.wait()
            return completed("ran on a")

        self.running = asyncio.ensure_future(ledger.run_once("agent", key, "digest", slow))

    async def started(self) -> None:
        await self._started.wait()

    async def finish(self) -> Completed:
        self._release.set()
        return await self.running


async def must_not_run() -> Completed:
    raise AssertionError("a live claim was taken over")


async def still_refused(other: ExecutionLedger, key: str, times: int = 3) -> None:
    """``other``'s retries keep hearing "still running", well past several lease lengths."""
    for _ in range(times):
        await asyncio.sleep(LEASE)
        with pytest.raises(ToolError, match="still running"):
            await other.run_once("agent", key, "digest", must_not_run)


async def test_a_claim_whose_owner_died_is_taken_over_after_its_lease(bus: Bus) -> None:
    first, second = await ledger(bus, "executor-a"), await ledger(bus, "executor-b")
    key = f"k-{uuid.uuid4().hex[:8]}"
    # executor-a claims and dies at once: no renewal, no outcome.
    assert await first.claim(first.key("agent", key), "digest") is None
    runs: list[str] = []

    async def run() -> Completed:
        runs.append("b")
        return completed("ran on b")

    with pytest.raises(ToolError, match="still running"):
        await second.run_once("agent", key, "digest", run)
    assert runs == []

    await asyncio.sleep(LEASE * 1.5)
    result = await second.run_once("agent", key, "digest", run)
    assert result.content == "ran on b"
    assert not result.replayed
    assert runs == ["b"]
    again = await second.run_once("agent", key, "digest", run)
    assert again.replayed
    assert runs == ["b"]


async def test_a_renewed_claim_is_not_taken_over_and_its_outcome_is_replayed(bus: Bus) -> None:
    first, second = await ledger(bus, "executor-a"), await ledger(bus, "executor-b")
    key = f"k-{uuid.uuid4().hex[:8]}"
    held = HeldCall(first, key)
    await held.started()

    await still_refused(second, key)

    assert (await held.finish()).content == "ran on a"
    replayed = await second.run_once("agent", key, "digest", must_not_run)
    assert replayed.replayed
    assert replayed.content == "ran on a"


async def test_two_retries_racing_for_a_lapsed_claim_run_it_once(bus: Bus) -> None:
    dead = await ledger(bus, "executor-dead")
    key = f"k-{uuid.uuid4().hex[:8]}"
    assert await dead.claim(dead.key("agent", key), "digest") is None
    await asyncio.sleep(LEASE * 1.5)
    runs: list[str] = []

    def runner(name: str) -> ExecutionLedger:
        return ExecutionLedger(dead.kv, owner=name, lease=LEASE)

    async def attempt(name: str) -> str:
        async def run() -> Completed:
            runs.append(name)
            await asyncio.sleep(LEASE)  # still running when the other looks
            return completed(name)

        try:
            return (await runner(name).run_once("agent", key, "digest", run)).content
        except ToolError as exc:
            return exc.code

    outcomes = await asyncio.gather(attempt("b"), attempt("c"))
    assert len(runs) == 1
    assert sorted(outcomes) == sorted([runs[0], "conflict"])


async def test_a_renewal_that_landed_unseen_in_an_outage_keeps_the_claim(bus: Bus) -> None:
    """A renewal can time out and still be written: the next one's compare-and-set then
    fails on a revision this executor wrote itself. It adopts it instead of giving up."""
    first, second = await ledger(bus, "executor-a"), await ledger(bus, "executor-b")
    key = f"k-{uuid.uuid4().hex[:8]}"
    ledger_key = first.key("agent", key)
    held = HeldCall(first, key)
    await held.started()
    entry = await first.kv.get(ledger_key)
    await first.kv.put(ledger_key, entry.value or b"")  # the unseen write: a new revision

    await still_refused(second, key)

    assert (await held.finish()).content == "ran on a"
