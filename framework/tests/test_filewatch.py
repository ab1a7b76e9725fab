"""Watching configuration files: a callback on each change of content, never on a mere touch,
kept going when a callback fails; services stop their watches when they stop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from framework_helpers import unique

from agentbus.framework.filewatch import FileWatch
from agentbus.framework.service import Service
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService


class Recorder:
    """An on_change that reads the file each time (what a service reloading it does)."""

    def __init__(self, path: Path, *, fail_on: str | None = None) -> None:
        self.path = path
        self.seen: list[str] = []
        self.fail_on = fail_on

    async def __call__(self) -> None:
        text = self.path.read_text()
        if text == self.fail_on:
            raise ValueError(f"cannot apply {text!r}")
        self.seen.append(text)


def bump_mtime(path: Path) -> None:
    """Move the modification time on, so a change is seen even within one clock tick."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


async def test_a_change_of_content_calls_back_and_a_touch_does_not(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("one")
    recorder = Recorder(path)
    watch = FileWatch(path, recorder, interval=3600)  # checked by hand below
    await watch.start()
    try:
        assert not await watch.check(), "nothing changed since start"

        path.write_text("two")
        bump_mtime(path)
        assert await watch.check()

        bump_mtime(path)  # touched: same content
        assert not await watch.check()
    finally:
        await watch.stop()

    assert recorder.seen == ["two"]


async def test_a_file_replaced_by_rename_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "tools.toml"
    path.write_text("old")
    recorder = Recorder(path)
    watch = FileWatch(path, recorder, interval=3600)
    await watch.start()
    try:
        staged = tmp_path / "tools.toml.new"
        staged.write_text("new")
        staged.replace(path)  # how editors and ConfigMaps update a file

        assert await watch.check()
    finally:
        await watch.stop()

    assert recorder.seen == ["new"]


async def test_a_failed_callback_is_logged_and_the_next_change_still_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "models.toml"
    path.write_text("good")
    recorder = Recorder(path, fail_on="broken")
    watch = FileWatch(path, recorder, interval=3600)
    await watch.start()
    try:
        path.write_text("broken")
        bump_mtime(path)
        assert await watch.check()
        path.write_text("fixed")
        bump_mtime(path)
        assert await watch.check()
    finally:
        await watch.stop()

    assert recorder.seen == ["fixed"]
    assert "could not be applied; kept the previous one" in caplog.text


async def test_a_missing_file_is_quiet_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.toml"
    recorder = Recorder(path)
    watch = FileWatch(path, recorder, interval=3600)
    await watch.start()
    try:
        assert not await watch.check()
        path.write_text("here")
        assert await watch.check()
        path.unlink()
        assert not await watch.check(), "a file that went away leaves the last one in force"
    finally:
        await watch.stop()

    assert recorder.seen == ["here"]


def test_the_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval"):
        FileWatch(tmp_path / "x", Recorder(tmp_path / "x"), interval=0)


def watching_service(path: Path, recorder: Recorder) -> type[Service]:
    class Watching(Service):
        name = unique("watching")

        async def initialize(self) -> None:
            self.watch = await self.watch_file(path, recorder)

    return Watching


async def test_a_service_watches_until_it_stops(
    tmp_path: Path, start_service: StartService
) -> None:
    path = tmp_path / "service.toml"
    path.write_text("v1")
    recorder = Recorder(path)
    service = await start_service(
        watching_service(path, recorder), settings={"file_watch_interval": 0.02}
    )

    path.write_text("v2")
    bump_mtime(path)
    await eventually(lambda: recorder.seen == ["v2"], what="the change applied")
    await service.stop()
    path.write_text("v3")
    bump_mtime(path)
    await asyncio.sleep(0.2)  # ten intervals: a running watch would have seen it

    assert recorder.seen == ["v2"], "a stopped service reloads nothing"


async def test_a_zero_interval_watches_nothing(tmp_path: Path, start_service: StartService) -> None:
    path = tmp_path / "service.toml"
    path.write_text("v1")
    service = await start_service(
        watching_service(path, Recorder(path)), settings={"file_watch_interval": 0}
    )

    assert service.watch is None  # type: ignore[attr-defined]
