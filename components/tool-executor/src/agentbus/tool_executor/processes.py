"""Running a child process within limits: own session, capped output, group killed at timeout.

The child starts in a new session (``start_new_session``), so it leads its own
process group. At the timeout, and again when the child exits (background
children it forked may still run), the whole group gets ``SIGKILL``. Output
(stdout and stderr, interleaved) is kept up to the cap; the rest is read and
dropped so the child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


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


async def run_process(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, max_output: int
) -> ProcessResult:
    """Run ``argv`` (no shell) and return its output, exit code and whether it timed out."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
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
            room = max_output - len(kept)
            if len(chunk) > room:
                truncated = True
            kept.extend(chunk[: max(0, room)])

    reader = asyncio.ensure_future(pump())
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        timed_out = True
    finally:
        _kill_group(process.pid)  # the child's session: forked children die with it
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    exit_code = await process.wait()
    # Every writer of the pipe is dead now, so the reader reaches EOF promptly; a grandchild
    # that left the session keeps it open, so do not wait forever for it.
    try:
        await asyncio.wait_for(reader, 2.0)
    except TimeoutError:
        truncated = True
    return ProcessResult(
        output=kept.decode("utf-8", errors="replace"),
        truncated=truncated,
        exit_code=exit_code,
        timed_out=timed_out,
        duration=time.monotonic() - started,
    )
