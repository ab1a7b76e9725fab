"""What a policy may hand to the processes the executor starts: never a credential."""

from __future__ import annotations

import pytest

from agentbus.framework import ConfigError
from agentbus.tool_executor.environment import child_environment
from agentbus.tool_executor.policy import Policy, PolicyFile


@pytest.mark.parametrize(
    "name", ["OPENAI_API_KEY", "AGENTBUS_NATS_PASSWORD", "NATS_URL", "GITHUB_TOKEN", "db_secret"]
)
def test_a_policy_passing_a_credential_through_does_not_load(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PolicyFile.parse({"policy": {"coder": {"env": ["LANG", name]}}}, "tools.toml")
    message = str(refused.value)
    assert message.startswith("tools.toml: ")
    assert name in message
    assert "remove it from env" in message


def test_an_mcp_server_cannot_be_given_the_bus_settings() -> None:
    config = {"mcp_servers": {"docs": {"command": "docs", "env": {"AGENTBUS_NATS_URL": "x"}}}}
    with pytest.raises(ConfigError) as refused:
        PolicyFile.parse(config, "tools.toml")
    assert "AGENTBUS_NATS_URL" in str(refused.value)
    assert "remove it from env" in str(refused.value)


def test_the_process_environment_is_built_from_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AGENTBUS_NATS_PASSWORD", "hunter2")
    monkeypatch.setenv("PROJECT_FLAVOUR", "mild")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)

    env = Policy(env=("PROJECT_FLAVOUR", "NOT_SET_ANYWHERE"), path="/bin").process_env()

    assert env == {"PATH": "/bin", "LANG": "de_DE.UTF-8", "PROJECT_FLAVOUR": "mild"}


def test_a_credential_never_passes_even_when_asked_for_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.delenv("LANG", raising=False)

    env = child_environment(path="/bin", passed=["ANTHROPIC_API_KEY"])

    assert env == {"PATH": "/bin", "LANG": "C.UTF-8"}
