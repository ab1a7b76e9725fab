"""The process backend: each version runs as ``agentbus serve`` processes from a git worktree.

:class:`LocalBackend` checks the commit out into a git worktree of its own and
runs ``python -m agentbus.framework.cli serve <target>`` processes there, with
the deploy color and component in their environment. The processes outlive the
command that started them (``agentbus deploy promote`` returns, the version keeps
serving); what is needed to stop them later goes into the deployments record as
``runtime``. Before it stops a version it checks that version's ``runtime``
(:mod:`.local_runtime`): the record is untrusted, and a runtime naming a folder
outside its worktrees, or processes it did not start, stops and removes nothing.
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

from agentbus.framework.auth.store import AuthFolder
from agentbus.framework.deploy.backends.base import Backend, Release, Running
from agentbus.framework.deploy.backends.local_runtime import (
    LocalRuntime,
    forget_live,
    is_our_process,
    note_live,
    parse_runtime,
    signal_ours,
)
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
        self._children: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
        """The processes this object started, by pid, with their instance."""

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
            started = {"pids": pids, "instances": list(instances[: len(pids)])}
            await self.stop(started, component=release.component, grace=0)
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
        key = os.environ.get("AGENTBUS_NATS_NKEY_FILE")
        if key and not AuthFolder.of(self.data_dir).seed_file(release.component).is_file():
            # No identity of its own in the cluster's auth folder (a test server's admin key,
            # an operator deploying by hand): the version connects as the deployer does.
            env["AGENTBUS_NATS_NKEY_FILE"] = key
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
        self._children[process.pid] = (process, instance)
        note_live(self.data_dir, process.pid, instance, worktree)
        return process.pid

    def where_logs(self, running: Running, instance: str) -> str:
        log = self.root / "logs" / f"{instance}.log"
        if not log.is_file():
            return ""
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        last = " | ".join(lines[-3:])
        return f"{log}" + (f" (last lines: {last[-600:]})" if last else "")

    async def stop_started(self, *, grace: float = 10.0) -> None:
        """Stop every process this backend started that still runs (shutdown, tests)."""
        for child, _ in list(self._children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for pid, (child, instance) in list(self._children.items()):
            try:
                await asyncio.wait_for(asyncio.to_thread(child.wait), grace + 5)
            except TimeoutError:
                child.kill()
                await asyncio.to_thread(child.wait)
            self._children.pop(pid, None)
            forget_live(self.data_dir, instance)

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    def check_runtime(self, runtime: Mapping[str, Any], *, component: str) -> None:
        parse_runtime(runtime, worktrees=self.worktrees, component=component)

    async def alive(self, runtime: Mapping[str, Any], *, component: str) -> bool:
        checked = parse_runtime(runtime, worktrees=self.worktrees, component=component)
        return all(self._running(pid, i, checked.worktree) for pid, i in checked.processes)

    def _running(self, pid: int, instance: str, worktree: Path | None) -> bool:
        if pid in self._children:
            child, started_as = self._children[pid]
            return started_as == instance and child.poll() is None
        return is_our_process(pid, instance, worktree)

    def _signal(self, pid: int, instance: str, worktree: Path | None, sig: signal.Signals) -> None:
        if pid in self._children:
            child, started_as = self._children[pid]
            if started_as == instance and child.poll() is None:
                child.send_signal(sig)
            return
        signal_ours(pid, instance, worktree, sig)

    async def stop(
        self, runtime: Mapping[str, Any], *, component: str, grace: float = 10.0
    ) -> None:
        checked = parse_runtime(runtime, worktrees=self.worktrees, component=component)
        await self._stop_processes(checked, grace)
        if checked.worktree is not None:
            await asyncio.to_thread(self._remove_worktree, checked.worktree)

    async def _stop_processes(self, checked: LocalRuntime, grace: float) -> None:
        worktree = checked.worktree
        running = [(p, i) for p, i in checked.processes if self._running(p, i, worktree)]
        for pid, instance in running:
            self._signal(pid, instance, worktree, signal.SIGTERM)
        deadline = time.monotonic() + grace + 5
        for _ in range(int((grace + 5) / 0.05) + 1):
            if time.monotonic() >= deadline or not any(
                self._running(p, i, worktree) for p, i in running
            ):
                break
            await asyncio.sleep(0.05)
        for pid, instance in running:
            if self._running(pid, instance, worktree):
                self._signal(pid, instance, worktree, signal.SIGKILL)
            child = self._children.pop(pid, (None, ""))[0]
            if child is not None:
                await asyncio.to_thread(child.wait)
        for _, instance in checked.processes:
            forget_live(self.data_dir, instance)
