"""Watching a configuration file: a callback when its content changes.

Polling (``os.stat`` every ``interval`` seconds, then a content digest when the
stat changed) rather than inotify: it needs no dependency, works on bind mounts
and network filesystems, and sees a file replaced by rename (how editors and
Kubernetes ConfigMaps update files). A callback that raises is logged and the
service keeps what it had: a broken edit never takes a running service down.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("agentbus.filewatch")

OnChange = Callable[[], Awaitable[None]]


class FileWatch:
    """Calls ``on_change()`` after the content of ``path`` changed (or it appeared)."""

    def __init__(self, path: Path, on_change: OnChange, *, interval: float = 2.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be more than 0, got {interval}")
        self.path = path
        self.interval = interval
        self._on_change = on_change
        self._stat: tuple[int, int, int] | None = None
        self._digest: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the file as it is now as the known version, then watch."""
        self._stat, self._digest = self._read()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.wait({task})

    async def check(self) -> bool:
        """Look once; call back when the content changed. Whether it did."""
        stat = self._stat_now()
        if stat == self._stat:
            return False
        stat, digest = await asyncio.to_thread(self._read)
        self._stat = stat
        if digest == self._digest or digest is None:  # touched, or gone: nothing to load
            return False
        self._digest = digest
        try:
            await self._on_change()
        except Exception:
            log.exception("%s changed but could not be applied; kept the previous one", self.path)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    def _stat_now(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _read(self) -> tuple[tuple[int, int, int] | None, bytes | None]:
        stat = self._stat_now()
        try:
            data = self.path.read_bytes()
        except OSError:
            return stat, None
        return stat, hashlib.sha256(data).digest()
