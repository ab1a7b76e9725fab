"""Done means: `agentbus up` runs the gateway, and `agentbus models ask` streams an answer from
whatever OpenAI-compatible server ``OPENAI_BASE_URL`` names (here, the fake)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbus.framework.testing import child_environment
from agentbus.model_gateway.testing import FakeOpenAI, openai_stream

AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTBUS, *args],
        env=env,
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cluster(tmp_path: Path, fake_openai: FakeOpenAI) -> Iterator[dict[str, str]]:
    (tmp_path / "agentbus.toml").write_text(
        '[nats]\nport = 0\n\n[[service]]\nname = "model-gateway"\n'
        'target = "agentbus.model_gateway.service:ModelGateway"\n'
        'pass_env = ["OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"]\n',
        encoding="utf-8",
    )
    env = child_environment(keep_key=False)  # `agentbus up` makes the cluster's identities
    env.update(
        AGENTBUS_DATA_DIR=str(tmp_path / "state"),
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_MODEL="llama-fake",
    )
    with (tmp_path / "up.log").open("w") as log:
        up = subprocess.Popen(
            [*AGENTBUS, "up", "-f", "agentbus.toml"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            yield env
        finally:
            up.terminate()
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()


@pytest.mark.slow
def test_up_runs_the_gateway_and_models_ask_streams(
    cluster: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 40
    listed = cli("models", "list", env=cluster, cwd=tmp_path)
    while listed.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        listed = cli("models", "list", env=cluster, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout
    assert "llama-fake" in listed.stdout

    fake_openai.script(openai_stream(["The sky ", "is ", "blue."], usage=(9, 4)))
    asked = cli("models", "ask", "default", "Why is the sky blue?", env=cluster, cwd=tmp_path)

    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "The sky is blue."
    assert "9 tokens in, 4 out" in asked.stderr
    sent = fake_openai.requests[-1].json
    assert sent["model"] == "llama-fake"
    assert sent["stream"] is True

    unknown = cli("models", "ask", "nope", "hi", env=cluster, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "[aliases.nope]" in unknown.stderr
