"""Choosing a deploy backend, and what the docker backend builds an image from (no engine)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from deploy_helpers import git, make_repo

from agentbus.framework.config import Settings
from agentbus.framework.deploy.backends import LocalBackend, backend_for
from agentbus.framework.deploy.backends.docker import DockerBackend, _archive
from agentbus.framework.errors import ConfigError, DeployError

CLI = [sys.executable, "-m", "agentbus.framework.cli"]


def test_the_local_backend_is_the_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    backend = backend_for(
        settings, tmp_path, nats_url="nats://127.0.0.1:4222", python_paths=["src"]
    )

    assert isinstance(backend, LocalBackend)
    assert (backend.nats_url, backend.python_paths) == ("nats://127.0.0.1:4222", ("src",))
    assert backend.data_dir == (tmp_path / "data").resolve()


def test_the_docker_backend_takes_the_settings_containers_need(tmp_path: Path) -> None:
    settings = Settings(
        deploy_backend="docker",
        deploy_image="agentbus/agentbus:candidate",
        deploy_network="agentbus_default",
        deploy_nats_url="nats://nats:4222",
    )

    backend = backend_for(
        settings, tmp_path, nats_url="nats://127.0.0.1:4222", python_paths=["src"]
    )

    assert isinstance(backend, DockerBackend)
    assert backend.nats_url == "nats://nats:4222", "containers reach NATS by the network's name"
    assert (backend.runtime_image, backend.network) == (
        "agentbus/agentbus:candidate",
        "agentbus_default",
    )


def test_without_a_container_url_the_docker_backend_uses_the_deployers(tmp_path: Path) -> None:
    settings = Settings(deploy_backend="docker")

    backend = backend_for(settings, tmp_path, nats_url="nats://10.0.0.5:4222", python_paths=["."])

    assert isinstance(backend, DockerBackend)
    assert backend.nats_url == "nats://10.0.0.5:4222"


def test_an_unknown_backend_is_a_settings_error() -> None:
    with pytest.raises(ConfigError, match="deploy_backend"):
        Settings.load(deploy_backend="kubernetes")


def test_the_build_context_holds_the_commit_and_the_versions_site(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "Dockerfile").write_text("FROM scratch\n")  # the project's own: not ours, kept apart
    git(repo, "add", "Dockerfile")
    git(repo, "commit", "-q", "-m", "a Dockerfile of the project's own")
    site = tmp_path / "site"
    (site / "greetlib").mkdir(parents=True)
    (site / "greetlib" / "__init__.py").write_text("VERSION = '1.0.1'\n")

    context = _archive(repo, git(repo, "rev-parse", "HEAD"), "FROM runtime\n", site)

    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        names = set(tar.getnames())
        ours = tar.extractfile("Dockerfile")
        project = tar.extractfile("release/Dockerfile")
        assert ours is not None
        assert project is not None
        assert (ours.read(), project.read()) == (b"FROM runtime\n", b"FROM scratch\n")
    assert {"release/svc.py", "site/greetlib/__init__.py", ".dockerignore"} <= names


def test_the_build_context_is_the_commit_not_the_work_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "svc.py").write_text("uncommitted\n")
    (repo / "untracked.py").write_text("x = 1\n")

    context = _archive(repo, git(repo, "rev-parse", "v1"), "FROM runtime\n")

    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        source = tar.extractfile("release/svc.py")
        assert source is not None
        assert b"uncommitted" not in source.read()
        assert "release/untracked.py" not in tar.getnames()
        assert "site" not in tar.getnames()


def test_promote_names_the_backends_it_knows(tmp_path: Path) -> None:
    promote = ["deploy", "promote", "svc", "--target", "svc:Svc", "--backend", "kubernetes"]

    done = subprocess.run(
        [*CLI, "--nats-url", "nats://127.0.0.1:1", *promote],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "--backend 'kubernetes': choose local or docker" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("runtime", "refusal"),
    [
        ({"pids": [-1], "instances": ["svc-blue-0123456789ab-0"]}, "not a list of process ids"),
        ({"pids": ["1 2"], "instances": ["svc-blue-0123456789ab-0"]}, "not a list of process ids"),
        ({"pids": [4242], "instances": []}, "not one instance per pid"),
        ({"pids": [4242], "instances": ["other-blue-0123456789ab-0"]}, "not an instance of"),
        ({"worktree": "relative/svc-blue-0123456789ab"}, "not a worktree of svc in"),
    ],
)
def test_the_local_backend_refuses_a_runtime_it_did_not_write(
    tmp_path: Path, runtime: dict[str, object], refusal: str
) -> None:
    backend = LocalBackend(tmp_path, nats_url="nats://127.0.0.1:4222", data_dir=tmp_path / "d")

    with pytest.raises(DeployError, match=refusal) as refused:
        backend.check_runtime({"backend": "local", **runtime}, component="svc")

    assert "the deployments record of svc may have been tampered with" in str(refused.value)


def test_the_docker_backend_refuses_a_runtime_that_names_no_container(tmp_path: Path) -> None:
    backend = DockerBackend(tmp_path, nats_url="nats://nats:4222")

    with pytest.raises(DeployError, match=r"refusing to stop .*: not container ids"):
        backend.check_runtime({"backend": "docker", "containers": ["-f /"]}, component="svc")
    with pytest.raises(DeployError, match=r"ran on the 'local' backend.*pass --backend local"):
        backend.check_runtime({"backend": "local", "pids": []}, component="svc")
