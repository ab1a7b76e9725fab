"""The environment of a child process a test starts (a CLI, ``agentbus up``)."""

from __future__ import annotations

import os

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
