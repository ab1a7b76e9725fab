"""``agentbus deadletters list`` on a server of its own: never used, empty, purged, filled."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentbus.framework.auth import AuthFolder
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.events import DEAD_REASON, DEAD_SERVICE, DEAD_SUBJECT
from agentbus.framework.jetstream import DEAD_LETTER, declare_stream
from agentbus.framework.testing import child_environment
from agentbus.interfaces.metadata import Source


@pytest.fixture
async def own_bus(tmp_path: Path, test_auth: AuthFolder) -> AsyncIterator[Bus]:
    """A bus on a fresh nats-server: its dead-letter stream holds only what a test puts."""
    with EmbeddedNats(tmp_path / "nats", auth=test_auth.server_config) as server:
        settings = Settings(nats_url=server.url, data_dir=tmp_path / "data")
        async with Bus(settings, Source("pytest", "deadletters")) as bus:
            yield bus


async def deadletters(bus: Bus, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.framework.cli", "--nats-url", bus.url,
        "deadletters", "list", *args,
        env=child_environment(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def assert_listed_as_empty(bus: Bus) -> None:
    code, out, err = await deadletters(bus)
    assert (code, out.strip()) == (0, "no dead letters"), err
    code, out, err = await deadletters(bus, "--json")
    assert code == 0, err
    assert json.loads(out) == []


async def test_a_stream_never_created_lists_nothing(own_bus: Bus) -> None:
    await assert_listed_as_empty(own_bus)


async def test_an_empty_stream_lists_nothing(own_bus: Bus) -> None:
    await declare_stream(own_bus.js, DEAD_LETTER, "memory")
    await assert_listed_as_empty(own_bus)


async def test_a_purged_stream_lists_nothing_and_a_filled_one_lists_its_letters(
    own_bus: Bus,
) -> None:
    await declare_stream(own_bus.js, DEAD_LETTER, "memory")
    headers = {DEAD_SERVICE: "triage", DEAD_SUBJECT: "agentbus.events.x.v1", DEAD_REASON: "failed"}
    await own_bus.js.publish("agentbus.deadletter.triage.x", b"{}", headers=headers)
    await own_bus.js.purge_stream(DEAD_LETTER.name)
    await assert_listed_as_empty(own_bus)

    await own_bus.js.publish("agentbus.deadletter.triage.x", b'{"n": 2}', headers=headers)
    code, out, err = await deadletters(own_bus, "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert (row["seq"], row["service"], row["reason"], row["payload"]) == (
        2, "triage", "failed", '{"n": 2}'
    )  # fmt: skip
