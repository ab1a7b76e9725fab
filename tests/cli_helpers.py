"""Run the real ``agentbus`` CLI as a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentbus.framework.testing import child_environment

ROOT = Path(__file__).resolve().parent.parent
AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def cli_env(*, session_key: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a CLI child process: with the test session's key for the session's
    server, or without (``session_key=False``) for a cluster ``agentbus up`` starts, which
    admits only its own identities (the CLI then finds the operator's key there)."""
    env = child_environment(keep_key=session_key)
    env.update(extra)
    return env


def agentbus(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTBUS, *args],
        env=env or cli_env(),
        cwd=cwd or ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
