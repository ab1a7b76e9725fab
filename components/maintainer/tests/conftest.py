"""Fixtures: offline wheels of greetlib, sample component repositories, maintainers on real NATS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from maintainer_helpers import MakeSample, StartMaintainer

from agentbus.framework.config import Settings
from agentbus.interfaces.metadata import new_id
from agentbus.maintainer.promote import KVPromoter, Promoter
from agentbus.maintainer.service import Maintainer
from agentbus.maintainer.testing import sample_repository, uv_environment, wheel_folder


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheel_folder(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def offline_uv(wheels: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """uv resolves greetlib from the wheel folder only (the flows' subprocesses inherit it)."""
    env = uv_environment(wheels)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def make_sample(tmp_path: Path, offline_uv: dict[str, str]) -> MakeSample:
    """``make_sample(autonomy=..., service=False)``: a sample component in its own git repo,
    uniquely named; without its service unless asked (promotion then moves the pointer)."""

    def make(*, autonomy: str | None = None, service: bool = False) -> Path:
        name = f"sample-{new_id()[:8]}"
        return sample_repository(tmp_path / name, name=name, autonomy=autonomy, service=service)

    return make


@pytest.fixture
async def start_maintainer(settings: Settings) -> AsyncIterator[StartMaintainer]:
    """``await start_maintainer(component_dir, promoter=None, blue_green=False)``: the
    pointer-only promoter unless ``blue_green`` (a service runs as processes) or ``promoter``
    say otherwise; stopped at teardown."""
    started: list[Maintainer] = []

    async def start(
        component_dir: Path, *, promoter: Promoter | None = None, blue_green: bool = False
    ) -> Maintainer:
        maintainer = Maintainer(settings, component_dir=component_dir, promoter=promoter)
        if promoter is None and not blue_green:
            maintainer.promoter = KVPromoter(maintainer.bus)
        await maintainer.start()
        started.append(maintainer)
        return maintainer

    yield start
    for maintainer in reversed(started):
        with contextlib.suppress(Exception):
            await maintainer.stop()
