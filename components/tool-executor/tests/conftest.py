"""Fixtures: a workspace with a sentinel folder outside it, loopback HTTP servers, an executor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import FakeWeb, Workspace

from agentbus.framework import Bus, Settings
from agentbus.interfaces.metadata import Source
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.service import ToolExecutor


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    server = FakeWeb()
    yield server
    server.close()


@pytest.fixture
def internal() -> Iterator[FakeWeb]:
    """A server that no policy allows: an 'internal service' SSRF would reach."""
    server = FakeWeb()
    yield server
    server.close()


StartExecutor = Callable[..., Any]


@pytest.fixture
async def start_executor(start_service: Any) -> StartExecutor:
    """``await start_executor({"policy": {...}, "executor": {...}})`` → a running executor."""

    async def start(config: dict[str, Any], settings: dict[str, Any] | None = None) -> ToolExecutor:
        service: ToolExecutor = await start_service(
            ToolExecutor, policies=PolicyFile.parse(config), settings=settings
        )
        return service

    return start


@pytest.fixture
async def bus_as(settings: Settings) -> AsyncIterator[Callable[[str], Any]]:
    """Factory of connected buses identified as a given component."""
    opened: list[Bus] = []

    async def connect(component: str) -> Bus:
        bus = Bus(settings, Source(component, "pytest"))
        await bus.connect()
        opened.append(bus)
        return bus

    yield connect
    for bus in opened:
        await bus.close()
