"""The environment of a child process a test starts (a CLI, ``agentbus up``), and the
settings of a connection as one identity of a test cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentbus.framework.auth.store import AuthFolder
from agentbus.framework.config import Settings

KEPT = ("AGENTBUS_NATS_NKEY_FILE",)
"""The session's admin key (``plugin.test_auth``): children connect to the test server too."""


def child_environment(*, keep_key: bool = True) -> dict[str, str]:
    """``os.environ`` without the ``AGENTBUS_*`` settings of this process, but with the
    session's NATS key unless ``keep_key`` is false (a child that brings its own
    identities, such as ``agentbus up``)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTBUS_") or (keep_key and k in KEPT)
    }


def settings_as(
    folder: AuthFolder, url: str, identity: str, data_dir: Path, **extra: Any
) -> Settings:
    """Settings that connect to ``url`` as ``identity`` of ``folder`` (a server started with
    ``EmbeddedNats(auth=folder.server_config)``), with a short shutdown grace."""
    values: dict[str, Any] = {"shutdown_grace": 1.0, **extra}
    return Settings(
        nats_url=url,
        nats_nkey_file=folder.seed_file(identity),
        identity=identity,
        data_dir=data_dir / identity,
        **values,
    )
