"""The process backend: each version runs as ``agentbus serve`` processes from a git worktree.

:class:`LocalBackend` checks the commit out into a git worktree of its own and
runs ``python -m agentbus.framework.cli serve <target>`` processes there, with
the deploy color and component in their environment. The processes outlive the
command that started them (``agentbus deploy promote`` returns, the version keeps
serving); what is needed to stop them later goes into the deployments record as
``runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentbus.framework.deploy.backends.base import Backend, Release, Running
from agentbus.framework.deploy.state import Color
from agentbus.framework.errors import DeployError


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise DeployError("git is not installed; the local backend needs it") from exc
    if done.returncode != 0:
        raise DeployError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def _is_our_process(pid: int, instance: str) -> bool:
    """The pid still runs our service for ``instance`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"agentbus.framework.cli" in cmdline and instance.encode() in cmdline


class LocalBackend(Backend):
    """Runs versions as local processes, each from a git worktree at its commit."""

    def __init__(
        self,
        repo: Path,
        *,
        nats_url: str,
        data_dir: Path,
        python_paths: Sequence[str] = (".",),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``python_paths`` are relative to the checkout (``src``, ``components/x/src``...)."""
        self.repo = repo.resolve()
        self.nats_url = nats_url
        self.data_dir = data_dir.resolve()
        self.python_paths = tuple(python_paths)
        self.env = dict(env or {})
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def root(self) -> Path:
        return self.data_dir / "deploy"

    async def start(self, release: Release, color: Color) -> Running:
        commit = await asyncio.to_thread(
            _git, self.repo, "rev-parse", f"{release.commit}^{{commit}}"
        )
        name = f"{release.component}-{color}-{commit[:12]}"
        worktree = self.root / "worktrees" / name
        await asyncio.to_thread(self._checkout, worktree, commit)
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        instances = tuple(f"{name}-{i}" for i in range(release.replicas))
        pids: list[int] = []
        try:
            for instance in instances:  # one by one: on a failure, those started are stopped
                pid = self._spawn(release, color, instance, worktree, logs)
                pids.append(pid)
        except OSError as exc:
            await self.stop({"pids": pids, "instances": instances[: len(pids)]}, grace=0)
            raise DeployError(f"cannot start {release.component} at {commit[:12]}: {exc}") from exc
        runtime = {
            "backend": "local",
            "pids": pids,
            "instances": list(instances),
            "worktree": str(worktree),
            "repo": str(self.repo),
            "logs": [str(logs / f"{i}.log") for i in instances],
        }
        return Running(release, color, commit, instances, runtime)

    def _checkout(self, worktree: Path, commit: str) -> None:
        if worktree.exists():
            self._remove_worktree(worktree)
        worktree.parent.mkdir(parents=True, exist_ok=True)
        _git(self.repo, "worktree", "add", "--detach", "--force", str(worktree), commit)

    def _remove_worktree(self, worktree: Path) -> None:
        with contextlib.suppress(DeployError):
            _git(self.repo, "worktree", "remove", "--force", str(worktree))
        if worktree.exists():  # not a registered worktree (any more): plain files
            shutil.rmtree(worktree, ignore_errors=True)
        with contextlib.suppress(DeployError):
            _git(self.repo, "worktree", "prune")

    def _spawn(
        self, release: Release, color: Color, instance: str, worktree: Path, logs: Path
    ) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTBUS_")}
        paths = [str(worktree / p) for p in self.python_paths]
        if release.site is not None:
            paths.append(str(release.site))
        env.update(self.env)
        env.update(release.env)
        env.update(
            PYTHONPATH=os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            AGENTBUS_NATS_URL=self.nats_url,
            AGENTBUS_DATA_DIR=str(self.data_dir),
            AGENTBUS_INSTANCE=instance,
            AGENTBUS_DEPLOY_COMPONENT=release.component,
            AGENTBUS_DEPLOY_COLOR=color,
        )
        argv = [sys.executable, "-m", "agentbus.framework.cli", "serve", release.target]
        with (logs / f"{instance}.log").open("ab") as out:
            process = subprocess.Popen(
                [*argv, "--instance", instance],
                cwd=worktree,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # outlives the promoting command, and its Ctrl-C
            )
        self._children[process.pid] = process
        return process.pid

    async def stop_started(self, *, grace: float = 10.0) -> None:
        """Stop every process this backend started that still runs (shutdown, tests)."""
        for child in list(self._children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for pid, child in list(self._children.items()):
            try:
                await asyncio.wait_for(asyncio.to_thread(child.wait), grace + 5)
            except TimeoutError:
                child.kill()
                await asyncio.to_thread(child.wait)
            self._children.pop(pid, None)

    async def alive(self, runtime: Mapping[str, Any]) -> bool:
        pairs = zip(runtime.get("pids", ()), runtime.get("instances", ()), strict=False)
        return all(self._running(pid, instance) for pid, instance in pairs)

    def _running(self, pid: int, instance: str) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        return _is_our_process(pid, instance)

    async def stop(self, runtime: Mapping[str, Any], *, grace: float = 10.0) -> None:
        pairs = list(zip(runtime.get("pids", ()), runtime.get("instances", ()), strict=False))
        running = [(pid, i) for pid, i in pairs if self._running(pid, i)]
        for pid, _ in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace + 5
        for _ in range(int((grace + 5) / 0.05) + 1):
            if time.monotonic() >= deadline or not any(self._running(p, i) for p, i in running):
                break
            await asyncio.sleep(0.05)
        for pid, instance in running:
            if self._running(pid, instance):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            child = self._children.pop(pid, None)
            if child is not None:
                await asyncio.to_thread(child.wait)
        if worktree := runtime.get("worktree"):
            await asyncio.to_thread(self._remove_worktree, Path(worktree))
