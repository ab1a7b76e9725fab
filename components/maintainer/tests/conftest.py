"""Fixtures: offline wheels of greetlib, sample component repositories, maintainers on real NATS."""

from __future__ import annotations

from pathlib import Path

import pytest
from maintainer_helpers import MakeSample, StartMaintainer

from agentbus.framework import Bus
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.metadata import new_id
from agentbus.maintainer.deployers import Deployer, PointerDeployer
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
def start_maintainer(start_service: StartService, bus: Bus) -> StartMaintainer:
    """``await start_maintainer(component_dir, deployer=None, blue_green=False)``: the
    pointer-only deployer (on the test's bus) unless ``blue_green`` (a service runs as
    processes) or ``deployer`` say otherwise; stopped at teardown by ``start_service``."""

    async def start(
        component_dir: Path, *, deployer: Deployer | None = None, blue_green: bool = False
    ) -> Maintainer:
        if deployer is None and not blue_green:
            deployer = PointerDeployer(bus)
        maintainer: Maintainer = await start_service(
            Maintainer, component_dir=component_dir, deployer=deployer
        )
        return maintainer

    return start
