"""Fixtures: a fresh nats-server per test, the fake model behind a real gateway, the real tool
executor over a workspace, and runner replicas.

Each test gets its own nats-server (about 0.1 s): the runner's work queue, KV bucket
and streams have fixed names, and runs one test leaves queued must not reach another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_helpers import SIDE_EFFECT, FakeModel, policy

from agentbus.framework import EmbeddedNats
from agentbus.model_gateway.service import ModelGateway
from agentbus.tool_executor.policy import PolicyFile
from agentbus.tool_executor.service import ToolExecutor
from agentbus.workflow_runner.definition import WorkflowApp
from agentbus.workflow_runner.service import WorkflowRunner
from agentbus.workflow_runner.settings import RunnerSettings

PROVIDER_VARIABLES = (
    "AGENTBUS_MODELS_FILE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "AGENTBUS_RUNNER_APPS",
)


@pytest.fixture(autouse=True)
def no_real_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_url(own_nats: EmbeddedNats) -> str:
    """Overrides the session server of agentbus.framework.testing.plugin: one server per test."""
    return own_nats.url


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def models_file(tmp_path: Path, fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch) -> Path:
    """models.toml: alias ``fast`` (tools, context window 100000) on the fake model."""
    path = tmp_path / "models.toml"
    path.write_text(
        f"""
[providers.fake]
kind = "openai"
base_url = "{fake_model.base_url}"
api_key = "sk-fake"
backoff = 0.01
timeout = 30

[aliases.fast]
provider = "fake"
model = "gpt-fake"
tools = true
context_window = 100000
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("AGENTBUS_MODELS_FILE", str(path))
    return path


@pytest.fixture
async def gateway(start_service: Any, models_file: Path) -> ModelGateway:
    service: ModelGateway = await start_service(ModelGateway)
    return service


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "notes.txt").write_text("colour: red\nsize: big\n", encoding="utf-8")
    script = folder / SIDE_EFFECT
    script.write_text("#!/bin/sh\necho ran >> side.log; sleep 1.5; echo finished\n")
    script.chmod(0o755)
    return folder


@pytest.fixture
async def executor(start_service: Any, workspace: Path) -> ToolExecutor:
    service: ToolExecutor = await start_service(
        ToolExecutor, policies=PolicyFile.parse(policy(workspace))
    )
    return service


StartRunner = Callable[..., Any]


@pytest.fixture
def start_runner(start_service: Any) -> StartRunner:
    """``await start_runner(instance="r1", apps=(app,), ack_wait=2)`` → a running replica
    (``settings={...}`` changes the framework settings, the other keywords RunnerSettings)."""

    async def start(
        *,
        instance: str | None = None,
        apps: tuple[WorkflowApp, ...] = (),
        settings: dict[str, Any] | None = None,
        **options: Any,
    ) -> WorkflowRunner:
        runner_options = RunnerSettings(**{"ack_wait": 3.0, "step_retries": 2, **options})
        runner: WorkflowRunner = await start_service(
            WorkflowRunner, settings=settings, instance=instance, options=runner_options, apps=apps
        )
        return runner

    return start


@pytest.fixture
async def stack(gateway: ModelGateway, executor: ToolExecutor, start_runner: StartRunner) -> Any:
    """Gateway, executor and one runner replica."""
    return await start_runner(instance="r1")
