"""Blue/green test kit: a tiny service in a real git repository, and a steady request load.

The repository has one commit per behaviour, each tagged:

* ``v1``, ``v2`` answer every request (``version`` tells them apart);
* ``smoke-fails`` answers every request with an ``internal`` error;
* ``crash`` fails at import, so its process exits before it is healthy;
* ``spike`` answers the smoke request (``n == -1``) and errors on all others,
  like a version that breaks only under real traffic.

The interface and service names come from the environment, so each test has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentbus.framework.bus import Bus
from agentbus.framework.deploy.backends import LocalBackend
from agentbus.framework.deploy.probe import SmokeRequest
from agentbus.framework.errors import BusError, RemoteError
from agentbus.interfaces.message import BusMessage, Interface, request_interface

SERVICE_SOURCE = """\
import os

from agentbus.framework import MessageContext, Service, handles
from agentbus.interfaces import BusMessage, request_interface

VERSION = "{version}"
MODE = "{mode}"
if MODE == "crash":
    raise RuntimeError("this version cannot even start")


class Ask(BusMessage):
    n: int


class Answer(BusMessage):
    n: int
    version: str
    instance: str


ASK = request_interface(os.environ["DEPLOY_TEST_INTERFACE"], "1.0.0", request=Ask, reply=Answer)


class Svc(Service):
    name = os.environ["DEPLOY_TEST_SERVICE"]
    version = VERSION + ".0.0"

    @handles(ASK)
    async def ask(self, request: Ask, ctx: MessageContext) -> Answer:
        if MODE == "smoke-fails" or (MODE == "spike" and request.n >= 0):
            raise RuntimeError("broken")
        return Answer(n=request.n, version=VERSION, instance=self.instance)
"""

TARGET = "svc:Svc"
SMOKE_PAYLOAD = {"n": -1}


class Ask(BusMessage):
    n: int


class Answer(BusMessage):
    n: int
    version: str
    instance: str


def ask_interface(name: str) -> Interface[Ask, Answer]:
    return request_interface(name, "1.0.0", request=Ask, reply=Answer)


def smoke(interface: Interface[Any, Any]) -> list[SmokeRequest]:
    return [SmokeRequest(interface.name, interface.version.major, SMOKE_PAYLOAD)]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    """A git repository with the tagged versions described in the module docstring."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for tag, version, mode in (
        ("v1", "1", "ok"),
        ("v2", "2", "ok"),
        ("smoke-fails", "3", "smoke-fails"),
        ("crash", "4", "crash"),
        ("spike", "5", "spike"),
    ):
        (path / "svc.py").write_text(SERVICE_SOURCE.format(version=version, mode=mode))
        git(path, "add", "svc.py")
        git(path, "commit", "-q", "-m", f"{tag}: {mode}")
        git(path, "tag", tag)
    return path


def deploy_backend(
    repo: Path, data_dir: Path, nats_url: str, interface: str, component: str, grace: float
) -> LocalBackend:
    """A local backend whose versions serve the test service as ``component`` on ``interface``,
    stopping within ``grace`` seconds."""
    return LocalBackend(
        repo,
        nats_url=nats_url,
        data_dir=data_dir,
        env={
            "DEPLOY_TEST_INTERFACE": interface,
            "DEPLOY_TEST_SERVICE": component,
            "AGENTBUS_SHUTDOWN_GRACE": f"{grace:g}",
        },
    )


def cluster_file(repo: Path, component: str, interface: str) -> None:
    """``agentbus.toml`` in ``repo``: the service entry `agentbus deploy` reads."""
    (repo / "agentbus.toml").write_text(
        f'[[service]]\nname = "{component}"\ntarget = "svc:Svc"\n'
        f'env = {{ DEPLOY_TEST_INTERFACE = "{interface}", DEPLOY_TEST_SERVICE = "{component}",'
        ' AGENTBUS_SHUTDOWN_GRACE = "2" }\n'
    )


def deploy_cli(
    repo: Path, cli: list[str], env: dict[str, str], timeout: float
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``deploy(*args)``: runs ``<cli> deploy <args>`` in ``repo`` and returns what it did."""

    def deploy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, "deploy", *args],
            cwd=repo,
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    return deploy


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Load:
    """Requests sent back to back by a few workers.

    ``lost`` collects requests that got no answer at all (timeout, no responders);
    ``errors`` counts error replies by code; ``versions`` the versions that answered.
    The timeout separates lost from slow: on 2 cores a flip can coincide with a
    container image build, and a reply that comes after 5 s still came. A request
    that is really lost never gets a reply and is counted all the same.
    """

    bus: Bus
    interface: Interface[Ask, Answer]
    workers: int = 4
    timeout: float = 30.0
    versions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.versions.values()) + sum(self.errors.values()) + len(self.lost)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(w)) for w in range(self.workers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _work(self, worker: int) -> None:
        n = worker * 1_000_000
        while not self._stop.is_set():
            n += 1
            try:
                reply = await self.bus.request(self.interface, Ask(n=n), timeout=self.timeout)
            except RemoteError as exc:
                self.errors[exc.code] += 1
                self.order.append(f"error:{exc.code}")
            except BusError as exc:
                self.lost.append(repr(exc))
            else:
                self.versions[reply.version] += 1
                self.order.append(reply.version)
            await asyncio.sleep(0.002)  # steady, not a flood: the services share 2 cores


def instances_of(component: str) -> list[int]:
    """Live pids of any instance of ``component`` (their command line names it)."""
    marker = f"--instance\0{component}-".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and pid_alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def kill_instances(component: str) -> None:
    """Teardown for instances started by another process (the CLI): they outlive it."""
    for pid in instances_of(component):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
