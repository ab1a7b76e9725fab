"""A second process that swaps a folder and a link as fast as it can (``renameat2``
with ``RENAME_EXCHANGE``), for the path race tests and the corpus's race cases.

Imported by name, like ``executor_helpers``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
first, second = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
stop, until = sys.argv[3], time.monotonic() + float(sys.argv[4])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
swaps = 0
while True:
    if libc.renameat2(AT_FDCWD, first, AT_FDCWD, second, RENAME_EXCHANGE) != 0:
        print("renameat2 failed:", os.strerror(ctypes.get_errno()), flush=True)
        sys.exit(1)
    swaps += 1
    if swaps == 2:
        print("swapping", flush=True)
    if swaps % 256 == 0 and (os.path.exists(stop) or time.monotonic() > until):
        sys.exit(0)
"""


class Swapper:
    """Exchanges ``first`` (a folder) and ``second`` (a link) until :meth:`stop`, a file
    ``stop_file`` appears, or ``lifetime`` seconds pass (it never outlives a test by long)."""

    def __init__(self, first: Path, second: Path, *, lifetime: float = 60.0) -> None:
        self.stop_file = first.parent / f".stop-swapping-{first.name}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(first), str(second), str(self.stop_file),
             str(lifetime)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        said = self.process.stdout.readline().strip()
        assert said == "swapping", f"waited for the swapper to start exchanging; it said {said!r}"

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.stop_file.touch()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stop_file.unlink(missing_ok=True)
        if self.process.stdout is not None:
            self.process.stdout.close()
