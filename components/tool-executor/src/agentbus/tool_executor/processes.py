"""Running a child process within limits: own session, capped output, all of it killed.

The child starts in a new session (``start_new_session``), so it leads its own
process group. At the timeout, and again when the child exits (background
children it forked may still run), the whole group gets ``SIGKILL``, and so does
every process that left the group (``setsid``, a double fork): its descendants
found through ``/proc``, and every process whose environment still carries this
run's marker (``AGENTBUS_TOOL_RUN=<id>``, inherited across forks and execs). Output
(stdout and stderr, interleaved) is kept up to the cap; the rest is read and
dropped so the child never blocks on a full pipe.

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
from agentbus.tool_executor.sandbox import Confinement, joined, limited, pids_group, sandbox

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


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The exit code as soon as the child exits. ``Process.wait()`` also waits until its
    pipes close, which a background grandchild holding stdout would put off to the timeout."""
    delay = 0.001
    while process.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return process.returncode


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
    file system to refuse what points outside."""
    with (
        tempfile.TemporaryDirectory(prefix="agentbus-run-", ignore_cleanup_errors=True) as tmp,
        pids_group(confine.processes if confine else 0) as group,
    ):
        wrapped = sandbox().wrap(argv, cwd, Path(tmp), confine) if confine else argv
        return await _run(
            joined(limited(wrapped, confine), group) if confine else wrapped,
            cwd=cwd,
            env=with_scratch(env, tmp),
            timeout=timeout,
            limit=max_output,
        )


async def _run(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    limit: int,
) -> ProcessResult:
    started = time.monotonic()
    run_id = uuid.uuid4().hex
    marker = f"{RUN_MARKER}={run_id}".encode()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**env, RUN_MARKER: run_id},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    kept = bytearray()
    truncated = False

    async def pump() -> None:
        nonlocal truncated
        assert process.stdout is not None
        while chunk := await process.stdout.read(1 << 16):
            room = limit - len(kept)
            if len(chunk) > room:
                truncated = True
            kept.extend(chunk[: max(0, room)])

    reader = asyncio.ensure_future(pump())
    timed_out = False
    try:
        await asyncio.wait_for(_exited(process), timeout)
    except TimeoutError:
        timed_out = True
    finally:
        # The child's session, and what left it (the child leads the group, so it dies too).
        # The /proc scan (about 20 us per process on the machine) runs off the event loop,
        # shielded: a cancellation of this call does not interrupt it.
        await asyncio.shield(asyncio.to_thread(_kill_run, process.pid, marker))
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    exit_code = await _exited(process)
    # Every writer of the pipe is dead now, so the reader reaches EOF promptly; one we could
    # not kill (another user's) keeps it open, so do not wait forever for it.
    try:
        await asyncio.wait_for(reader, 2.0)
        await asyncio.wait_for(process.wait(), 2.0)  # the transport closes with its pipes
    except TimeoutError:
        truncated = True
    return ProcessResult(
        output=kept.decode("utf-8", errors="replace"),
        truncated=truncated,
        exit_code=exit_code,
        timed_out=timed_out,
        duration=time.monotonic() - started,
    )
