"""A new user's first minutes: the repository's agentbus.toml, copied into an empty folder
(a fresh clone: no tools.toml, no models.toml, no keys), brought up with ``agentbus up``;
every service answers, ``status`` is readable at 80 columns, and the CLI finds the
project's ``.agentbus`` from a sub-folder."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import AGENTBUS, ROOT, agentbus, cli_env
from test_cli_cluster import wait_for

SERVICES = {
    "model-gateway": ["model-gateway-0"],
    "tool-executor": ["tool-executor-0"],
    "workflow-runner": ["workflow-runner-0", "workflow-runner-1"],
}

pytestmark = pytest.mark.slow


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    log: Path


def instances(project: Project, cwd: Path | None = None) -> set[str]:
    done = agentbus("status", "--json", env=project.env, cwd=cwd or project.folder)
    return {s["id"] for s in json.loads(done.stdout)} if done.returncode == 0 else set()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    folder = tmp_path_factory.mktemp("fresh-clone")
    shutil.copy(ROOT / "agentbus.toml", folder / "agentbus.toml")
    (folder / "src" / "deeper").mkdir(parents=True)
    env = cli_env(session_key=False)  # no AGENTBUS_* at all, as in a new shell
    log = folder / "up.log"
    with log.open("w") as out:
        # --port 0: the file's 4222 may be taken on a test machine; nothing else differs
        up = subprocess.Popen(
            [*AGENTBUS, "up", "-f", "agentbus.toml", "--port", "0"],
            env=env, cwd=folder, stdout=out, stderr=out, text=True,
        )  # fmt: skip
        project = Project(folder, env, log)
        try:
            expected = {i for ids in SERVICES.values() for i in ids}
            wait_for(
                lambda: instances(project) >= expected,
                90,
                f"every service of agentbus.toml in `agentbus status` (log: {log})",
            )
            yield project
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()


def test_every_service_of_the_repository_cluster_answers(project: Project) -> None:
    for service in SERVICES:
        done = agentbus("health", "--service", service, env=project.env, cwd=project.folder)
        assert done.returncode == 0, f"{service}: {done.stderr}"
    log = project.log.read_text()
    assert "exited with code" not in log, log
    assert "no policy file" in log  # the executor says how to give it one
    assert "tools.example.toml" in log


def test_status_is_readable_at_80_columns(project: Project) -> None:
    env = {**project.env, "COLUMNS": "80"}
    table = agentbus("status", env=env, cwd=project.folder)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), table.stdout
    assert "…" not in table.stdout
    shown = {word for line in lines for word in line.split()}
    for service, ids in SERVICES.items():
        assert service in shown
        assert set(ids) <= shown, table.stdout

    with_endpoints = agentbus("status", "--endpoints", env=env, cwd=project.folder)
    assert with_endpoints.returncode == 0, with_endpoints.stderr
    assert all(len(line) <= 80 for line in with_endpoints.stdout.splitlines())
    assert "…" not in with_endpoints.stdout
    words = set(with_endpoints.stdout.split())
    assert {"agentbus.tools.execute.v1.*", "agentbus.workflows.start.v1.*"} <= words


def test_the_cli_finds_the_project_from_a_sub_folder(project: Project) -> None:
    deeper = project.folder / "src" / "deeper"
    assert not (deeper / ".agentbus").exists()
    assert instances(project, cwd=deeper) >= set(SERVICES["workflow-runner"])
    shown = agentbus("auth", "show", "--json", env=project.env, cwd=deeper)
    assert shown.returncode == 0, shown.stderr
    assert [r["name"] for r in json.loads(shown.stdout)] == ["operator"]
