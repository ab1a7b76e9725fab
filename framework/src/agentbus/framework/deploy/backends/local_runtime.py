"""What a local backend's ``runtime`` may name, checked before anything is signalled or removed.

A runtime comes back from the deployments record, and anyone who can write the KV
bucket can write it. :func:`parse_runtime` accepts only what :class:`LocalBackend`
writes for the component: the worktree ``<root>/worktrees/<component>-<color>-<sha12>``
(no symlink on the way: the resolved path must be that path), instances
``<worktree name>-<n>`` and process ids. A pid is signalled only while it runs our
``agentbus serve`` of that instance from that worktree (:func:`is_our_process`), and
through a pidfd opened before that check, so a pid reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentbus.framework.deploy.state import shown, tampered
from agentbus.framework.errors import DeployError

SERVE_ARGV = [b"-m", b"agentbus.framework.cli", b"serve"]
"""What follows the interpreter in the command line of every process the backend starts."""


def version_name(component: str) -> str:
    """The pattern of a worktree name (an instance prefix): ``<component>-<color>-<sha12>``."""
    return rf"{re.escape(component)}-(?:blue|green)-[0-9a-f]{{12}}"


@dataclass(frozen=True, slots=True)
class LocalRuntime:
    """A checked runtime: the worktree to remove (if any) and ``(pid, instance)`` pairs."""

    worktree: Path | None
    processes: tuple[tuple[int, str], ...]


def parse_runtime(runtime: Mapping[str, Any], *, worktrees: Path, component: str) -> LocalRuntime:
    """``runtime`` checked against what the backend writes for ``component`` under
    ``worktrees`` (a resolved path); :class:`DeployError` for anything else."""
    backend = runtime.get("backend", "local")
    if backend != "local":
        raise DeployError(
            f"the version of {component} to stop ran on the {shown(backend)} backend, not on "
            "this local one: pass --backend docker (or check `agentbus deploy status "
            f"{component}`)"
        )
    worktree = _worktree(runtime.get("worktree"), worktrees, component)
    pids, instances = runtime.get("pids", []), runtime.get("instances", [])
    if not isinstance(pids, list | tuple) or not all(type(p) is int and p > 1 for p in pids):
        raise tampered(component, f"signal {shown(pids)}: not a list of process ids")
    if not isinstance(instances, list | tuple) or len(instances) != len(pids):
        raise tampered(component, f"stop {shown(instances)}: not one instance per pid")
    prefix = re.escape(worktree.name) if worktree is not None else version_name(component)
    for instance in instances:
        if not isinstance(instance, str) or not re.fullmatch(rf"{prefix}-[0-9]+", instance):
            raise tampered(
                component, f"stop instance {shown(instance)}: not an instance of this version"
            )
    return LocalRuntime(worktree, tuple(zip(pids, instances, strict=True)))


def _worktree(raw: object, worktrees: Path, component: str) -> Path | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise tampered(component, f"remove {shown(raw)}: not a path")
    path = Path(raw)
    if (
        not path.is_absolute()
        or path.parent != worktrees
        or not re.fullmatch(version_name(component), path.name)
    ):
        raise tampered(
            component, f"remove {shown(raw)}: not a worktree of {component} in {worktrees}"
        )
    resolved = path.resolve()
    if resolved != path:
        raise tampered(
            component, f"remove {raw}: it leads to {resolved} through a symlink, out of {worktrees}"
        )
    return path


def is_our_process(pid: int, instance: str, worktree: Path | None) -> bool:
    """``pid`` runs ``agentbus serve ... --instance <instance>`` from ``worktree`` (not a
    reused pid, not another program whose command line merely names the instance)."""
    if worktree is None:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, IndexError):
        return False
    if argv and argv[-1] == b"":
        argv.pop()
    return (
        state != "Z"
        and argv[1:4] == SERVE_ARGV
        and argv[-2:] == [b"--instance", instance.encode()]
        and cwd == str(worktree)
    )


def signal_ours(pid: int, instance: str, worktree: Path | None, sig: signal.Signals) -> bool:
    """Send ``sig`` to ``pid`` if it is our process for ``instance``; whether it was sent."""
    try:
        pidfd = os.pidfd_open(pid)  # pins this very process: a reused pid is another one
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # no pidfds here (not Linux, or an old kernel)
        pidfd = -1
    try:
        if not is_our_process(pid, instance, worktree):
            return False
        with contextlib.suppress(ProcessLookupError):
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        return True
    finally:
        if pidfd >= 0:
            os.close(pidfd)


LIVE_FOLDER = "live"
"""``<data dir>/deploy/live/<instance>.json``: each running instance the local backend started
(pid, worktree), so that the ``agentbus up`` of that data folder stops them with it."""


def live_folder(data_dir: Path) -> Path:
    return data_dir / "deploy" / LIVE_FOLDER


def note_live(data_dir: Path, pid: int, instance: str, worktree: Path) -> None:
    folder = live_folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "instance": instance, "worktree": str(worktree)}
    (folder / f"{instance}.json").write_text(json.dumps(record), encoding="utf-8")


def forget_live(data_dir: Path, instance: str) -> None:
    if re.fullmatch(r"[A-Za-z0-9._-]+", instance):
        (live_folder(data_dir) / f"{instance}.json").unlink(missing_ok=True)


def stop_live_instances(data_dir: Path, grace: float) -> list[str]:
    """SIGTERM every deployed instance noted under ``data_dir`` that still runs our
    ``agentbus serve`` (checked per pid: a stale note signals nothing), SIGKILL what is left
    after ``grace``; the instances stopped. For ``agentbus up``, before its NATS stops."""
    folder = live_folder(data_dir)
    worktrees = (data_dir / "deploy" / "worktrees").resolve()
    running: list[tuple[int, str, Path]] = []
    for note in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(note.read_text(encoding="utf-8"))
            pid, instance, worktree = record["pid"], record["instance"], Path(record["worktree"])
        except (OSError, ValueError, KeyError, TypeError):
            note.unlink(missing_ok=True)
            continue
        valid = type(pid) is int and isinstance(instance, str) and worktree.parent == worktrees
        if valid and signal_ours(pid, instance, worktree, signal.SIGTERM):
            running.append((pid, instance, worktree))
        note.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline:
        if not any(is_our_process(p, i, w) for p, i, w in running):
            break
        time.sleep(0.05)
    for pid, instance, worktree in running:
        signal_ours(pid, instance, worktree, signal.SIGKILL)
    return [instance for _, instance, _ in running]
