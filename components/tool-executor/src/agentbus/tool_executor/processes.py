"""Running a child process within limits: own session, capped output, all of it killed.

The child starts in a new session (``start_new_session``), so it leads its own
process group, and in a ``pids`` cgroup of its own where one can be made
(:func:`~agentbus.tool_executor.sandbox.pids_group`). At the timeout, and again when
the child exits (background children it forked may still run), the group gets
``SIGKILL``, and so does every process that left it (``setsid``, a double fork):
everything in the call's cgroup; inside bubblewrap the PID namespace ends them all;
only with neither, its descendants found through ``/proc`` and every process whose
environment still carries this run's marker (``AGENTBUS_TOOL_RUN=<id>``, inherited
across forks and execs). The exit is seen through asyncio's subprocess protocol
(``process_exited``), not by polling. Output (stdout and stderr, interleaved) is kept
up to the cap; the rest is read and dropped so the child never blocks on a full pipe.

The child gets exactly ``env`` (see :mod:`agentbus.tool_executor.environment`), never
the executor's own environment, plus the marker and, unless ``env`` sets them,
``HOME`` and ``TMPDIR`` pointing at a private folder made for the run (mode 0700) and
removed after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from agentbus.tool_executor.environment import with_scratch
from agentbus.tool_executor.sandbox import (
    Confinement,
    joined,
    kill_members,
    limited,
    pids_group,
    sandbox,
)

RUN_MARKER = "AGENTBUS_TOOL_RUN"
"""The environment variable that marks every process of one run (value: the run's id)."""
_PROC = Path("/proc")
_KILL_ROUNDS = 10


@dataclass(frozen=True, slots=True)
class ProcessResult:
    output: str
    truncated: bool
    exit_code: int
    timed_out: bool
    duration: float


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (empty without /proc)."""
    found: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in _PROC.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` in the process tree."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _marked(marker: bytes) -> set[int]:
    """Processes whose environment holds ``marker`` (only this user's are readable)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in _PROC.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        found.add(int(entry.name))
    return found


def _kill_run(pid: int, marker: bytes) -> None:
    """SIGKILL the child's group, its descendants, and whatever carries the run's marker;
    again while any remain (they may fork meanwhile)."""
    escaped = _descendants(pid)
    _kill_group(pid)
    for _ in range(_KILL_ROUNDS):
        targets = (escaped | _marked(marker)) - {os.getpid()}
        if not targets:
            return
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)
        escaped = set()


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    max_output: int,
    confine: Confinement | None,
) -> ProcessResult:
    """Run ``argv`` (no shell) in the sandbox ``confine`` describes (``sandbox.py``) and
    return its output, exit code and whether it timed out. ``None`` runs it as it is: only
    for git's read-only look at a repository's layout and config, which must see the real
    file system to refuse what points outside (no cgroup either: joining one costs more than
    the /proc scan that then finds its processes)."""
    with (
        tempfile.TemporaryDirectory(prefix="agentbus-run-", ignore_cleanup_errors=True) as tmp,
        pids_group(confine.processes if confine else 0) as group,
    ):
        namespaced = confine is not None and sandbox().bwrap is not None
        if confine is not None:
            argv = limited(sandbox().wrap(argv, cwd, Path(tmp), confine), confine)
        return await _run(
            joined(argv, group),
            cwd=cwd,
            env=with_scratch(env, tmp),
            timeout=timeout,
            limit=max_output,
            group=group,
            namespaced=namespaced,
        )


class _Collector(asyncio.SubprocessProtocol):
    """The child's output up to ``limit`` (the rest read and dropped, so the child never
    blocks on a full pipe), and two moments: the child exited (``exited``, from the event
    loop's child watcher: no polling) and every pipe closed too (``closed``)."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.truncated = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        room = self.limit - len(self.kept)
        if len(data) > room:
            self.truncated = True
        self.kept.extend(data[: max(0, room)])

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _run(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    limit: int,
    group: Path | None,
    namespaced: bool,
) -> ProcessResult:
    started = time.monotonic()
    run_id = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    transport, collector = await loop.subprocess_exec(
        lambda: _Collector(limit, loop),
        *argv,
        cwd=cwd,
        env={**env, RUN_MARKER: run_id},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    pid = transport.get_pid()
    timed_out = False
    try:
        # The call ends when the command exits, not when its pipes close: a background
        # child holding stdout would otherwise put it off to the timeout.
        await asyncio.wait_for(asyncio.shield(collector.exited), timeout)
    except TimeoutError:
        timed_out = True
    finally:
        # The child's session (the child leads its group), then what left it: everything in
        # the call's cgroup; inside bubblewrap's PID namespace nothing outlives its init,
        # which dies with the child; only without either, a /proc scan (off the event loop,
        # shielded: a cancellation of this call does not interrupt it).
        _kill_group(pid)
        if group is not None:
            kill_members(group)
        elif not namespaced:
            await asyncio.shield(
                asyncio.to_thread(_kill_run, pid, f"{RUN_MARKER}={run_id}".encode())
            )
    await collector.exited
    # Every writer of the pipe is dead now, so it closes promptly; one we could not kill
    # (another user's) keeps it open, so do not wait forever for it.
    try:
        await asyncio.wait_for(asyncio.shield(collector.closed), 2.0)
    except TimeoutError:
        collector.truncated = True
    transport.close()
    exit_code = transport.get_returncode()
    return ProcessResult(
        output=collector.kept.decode("utf-8", errors="replace"),
        truncated=collector.truncated,
        exit_code=-1 if exit_code is None else exit_code,
        timed_out=timed_out,
        duration=time.monotonic() - started,
    )
