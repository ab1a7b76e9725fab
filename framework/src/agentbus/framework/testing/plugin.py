"""Pytest fixtures for agentbus: a real nats-server and services started against it.

Enable with ``pytest_plugins = ["agentbus.framework.testing.plugin"]`` in a conftest.
The server is the same :class:`EmbeddedNats` that ``agentbus up`` runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentbus.framework.auth import ADMIN, AuthFolder, Identity, admin_grants
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.service import Service
from agentbus.interfaces.metadata import Source

S = TypeVar("S", bound=Service)


ADMIN_KEY_ENV = "AGENTBUS_NATS_NKEY_FILE"


@pytest.fixture(scope="session")
def test_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthFolder]:
    """The session's identities: ``admin`` (every subject), whose key every ``Settings``
    of the session uses (through ``AGENTBUS_NATS_NKEY_FILE``, which child processes
    inherit). Tests of least privilege make their own (``auth_server``)."""
    folder = AuthFolder(tmp_path_factory.mktemp("auth"))
    folder.write([Identity(ADMIN, "admin", admin_grants())])
    before = os.environ.get(ADMIN_KEY_ENV)
    os.environ[ADMIN_KEY_ENV] = str(folder.seed_file(ADMIN))
    yield folder
    if before is None:
        os.environ.pop(ADMIN_KEY_ENV, None)
    else:
        os.environ[ADMIN_KEY_ENV] = before


@pytest.fixture(scope="session")
def nats_server(
    tmp_path_factory: pytest.TempPathFactory, test_auth: AuthFolder
) -> Iterator[EmbeddedNats]:
    """One real nats-server with JetStream for the whole session; it refuses anonymous
    clients, as every server agentbus starts does."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), auth=test_auth.server_config)
    with server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session server, with a short shutdown grace."""
    return Settings(nats_url=nats_url, data_dir=tmp_path / "agentbus", shutdown_grace=5.0)


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """A connected client bus, identified as component ``test``."""
    async with Bus(settings, Source("test", "pytest")) as connected:
        yield connected


StartService = Callable[..., Any]


@pytest.fixture
async def start_service(settings: Settings) -> AsyncIterator[StartService]:
    """Factory: ``svc = await start_service(MyService, settings=..., **constructor_kwargs)``,
    stopped at teardown.

    ``settings`` is a :class:`Settings`, or a mapping of changes to the test's ``settings``
    (``settings={"file_watch_interval": 0.05}``); the other keyword arguments go to the
    constructor (``instance="a"``, a component's collaborators).
    """
    started: list[Service] = []

    async def start(
        cls: type[S], *, settings: Settings | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> S:
        if settings is None or isinstance(settings, Mapping):
            chosen = base.model_copy(update=dict(settings or {}))
        else:
            chosen = settings
        service = cls(chosen, **kwargs)
        await service.start()
        started.append(service)
        return service

    base = settings
    yield start
    for service in reversed(started):
        with contextlib.suppress(Exception):
            await service.stop()
