"""Fixtures: provider fakes on loopback, a models.toml pointing at them, gateways on real NATS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentbus.model_gateway.service import ModelGateway
from agentbus.model_gateway.testing import FakeAnthropic, FakeOpenAI

PROVIDER_VARIABLES = (
    "AGENTBUS_MODELS_FILE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "OPENAI_EMBEDDING_MODEL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
)


@pytest.fixture(autouse=True)
def no_real_providers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach a real provider: drop every provider variable, leave the cwd."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


WriteModels = Callable[..., Path]


@pytest.fixture
def write_models(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> WriteModels:
    """Write a models.toml (OpenAI alias ``fast``, Anthropic alias ``claude``, embeddings ``embed``,
    no-tools alias ``plain``) and point ``AGENTBUS_MODELS_FILE`` at it. Keyword arguments
    override provider settings (``openai={...}``, ``anthropic={...}``) or add TOML text (``extra``).
    """

    def write(
        *,
        openai: dict[str, Any] | None = None,
        anthropic: dict[str, Any] | None = None,
        fast: str = "",
        extra: str = "",
    ) -> Path:
        def table(values: dict[str, Any]) -> str:
            return "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in values.items())

        openai_table = {"backoff": 0.01, "timeout": 5, **(openai or {})}
        anthropic_table = {"backoff": 0.01, "timeout": 5, **(anthropic or {})}
        text = f"""
[providers.openai]
kind = "openai"
base_url = "{fake_openai.base_url}"
api_key = "${{FAKE_OPENAI_KEY}}"
{table(openai_table)}
[providers.anthropic]
kind = "anthropic"
base_url = "{fake_anthropic.base_url}"
api_key = "sk-ant-fake"
{table(anthropic_table)}
[aliases.fast]
provider = "openai"
model = "gpt-fake"
tools = true
structured_output = true
context_window = 128000
{fast}
[aliases.claude]
provider = "anthropic"
model = "claude-fake"
tools = true
vision = true

[aliases.plain]
provider = "openai"
model = "small-fake"

[aliases.embed]
provider = "openai"
model = "embed-fake"
capability = "embedding"
dimensions = 4
{extra}
"""
        path = tmp_path / "models.toml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake-secret")
        monkeypatch.setenv("AGENTBUS_MODELS_FILE", str(path))
        return path

    return write


@pytest.fixture
async def gateway(start_service: Any, write_models: WriteModels) -> ModelGateway:
    """A gateway on the session's nats-server with the default test models.toml."""
    write_models()
    service: ModelGateway = await start_service(ModelGateway)
    return service
