"""``agentbus up`` gives each service only the environment it needs, never all of its own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agentbus.framework import ConfigError
from agentbus.framework.supervisor import ClusterFile, Supervisor
from agentbus.framework.testing import eventually

REPORTER = '''
"""A service that writes the environment it was started with to $ENV_REPORT."""
import json
import os
from pathlib import Path

from agentbus.framework import Service

Path(os.environ["ENV_REPORT"]).write_text(json.dumps(dict(os.environ)), encoding="utf-8")


class Reporter(Service):
    name = "reporter"
    version = "1.0.0"
'''


def cluster_file(folder: Path, nats_url: str) -> Path:
    (folder / "env_reporter.py").write_text(REPORTER, encoding="utf-8")
    path = folder / "agentbus.toml"
    path.write_text(
        f"""
[nats]
url = "{nats_url}"

[[service]]
name = "plain"
target = "env_reporter:Reporter"
env = {{ ENV_REPORT = "{folder / "plain.json"}" }}

[[service]]
name = "caller-of-providers"
target = "env_reporter:Reporter"
pass_env = ["OPENAI_API_KEY", "NOT_SET_ANYWHERE"]
env = {{ ENV_REPORT = "{folder / "caller.json"}" }}
""",
        encoding="utf-8",
    )
    return path


async def test_provider_keys_reach_only_the_services_that_ask_for_them(
    tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("SOME_UNRELATED_SETTING", "of the shell that ran agentbus up")
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_PUBLISH_TOKEN", "pypi-token")
    monkeypatch.setenv("AGENTBUS_NATS_USER", "svc")
    supervisor = Supervisor(ClusterFile.load(cluster_file(tmp_path, nats_url)), tmp_path / "data")
    supervisor.start()
    try:

        def report(name: str) -> dict[str, str]:
            loaded: dict[str, str] = json.loads((tmp_path / name).read_text(encoding="utf-8"))
            return loaded

        plain = await eventually(lambda: report("plain.json"), timeout=30, what="plain's env")
        caller = await eventually(lambda: report("caller.json"), timeout=30, what="caller's env")
    finally:
        await asyncio.to_thread(supervisor.stop)

    assert "OPENAI_API_KEY" not in plain
    assert caller["OPENAI_API_KEY"] == "sk-test-key"
    assert "NOT_SET_ANYWHERE" not in caller
    for env in (plain, caller):
        assert "SOME_UNRELATED_SETTING" not in env
        assert "UV_PUBLISH_TOKEN" not in env
        assert env["UV_OFFLINE"] == "1"
        assert env["AGENTBUS_NATS_USER"] == "svc"  # the service's own bus identity
        assert env["AGENTBUS_NATS_URL"] == nats_url
        assert env["PYTHONPATH"].split(":")[0] == str(tmp_path)
    assert plain["AGENTBUS_INSTANCE"] == "plain-0"


def test_pass_env_names_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "agentbus.toml"
    path.write_text(
        '[[service]]\nname = "x"\ntarget = "m:C"\npass_env = ["OPENAI_API_KEY", "$HOME"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        ClusterFile.load(path)
    assert "'$HOME' is not an environment variable name" in str(refused.value)
