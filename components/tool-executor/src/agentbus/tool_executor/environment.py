"""The one environment every process the executor starts begins from.

A shell command, git, pytest or an MCP stdio server never inherits the executor's
own environment, which holds its bus credentials (``AGENTBUS_NATS_*``) and perhaps
provider keys. It gets ``PATH``, ``LANG`` (the executor's, else ``C.UTF-8``) and
``LC_ALL`` (if the executor has one), ``HOME`` and ``TMPDIR`` pointing at a private
scratch folder (made by :func:`~agentbus.tool_executor.processes.run_process` per
run, by the MCP import per server), and then only what the policy passes through
by name (``env = [...]``) or an MCP server's ``env`` table sets.

A pass-through name that looks like a credential (:func:`credential_pattern`) is a
configuration error: such a variable would be readable by every command the caller
runs. An MCP server's ``env`` values are written in the policy file for that one
server, so only the bus's own variables are refused there (:data:`BUS_PATTERNS`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

BUS_PATTERNS = ("AGENTBUS_NATS_*", "NATS_*")
"""The bus's connection settings and credentials: never given to a child process."""
CREDENTIAL_PATTERNS = (
    *BUS_PATTERNS,
    "*_API_KEY",
    "*APIKEY*",
    "*TOKEN*",
    "*PASSWORD*",
    "*PASSWD*",
    "*SECRET*",
    "*CREDENTIAL*",
    "*CREDS*",
    "*PRIVATE_KEY*",
    "*ACCESS_KEY*",
)
"""Names (matched case-insensitively) a policy may not pass through to processes."""
DEFAULT_LANG = "C.UTF-8"


def _matching(name: str, patterns: Iterable[str]) -> str | None:
    upper = name.upper()
    return next((p for p in patterns if fnmatch.fnmatchcase(upper, p)), None)


def credential_pattern(name: str) -> str | None:
    """The credential pattern ``name`` matches, or ``None``."""
    return _matching(name, CREDENTIAL_PATTERNS)


def bus_pattern(name: str) -> str | None:
    """The bus pattern (``AGENTBUS_NATS_*``, ``NATS_*``) ``name`` matches, or ``None``."""
    return _matching(name, BUS_PATTERNS)


def child_environment(
    *, path: str, passed: Iterable[str] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``PATH``, the locale, the variables named in ``passed`` that the executor has (any
    credential-looking one dropped, though policies refuse them when they load), then
    ``extra``. ``HOME`` and ``TMPDIR`` are added by whoever makes the scratch folder."""
    env = {"PATH": path, "LANG": os.environ.get("LANG") or DEFAULT_LANG}
    if lc_all := os.environ.get("LC_ALL"):
        env["LC_ALL"] = lc_all
    for name in passed:
        if name in os.environ and credential_pattern(name) is None:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def with_scratch(env: Mapping[str, str], scratch: str) -> dict[str, str]:
    """``env`` with ``HOME`` and ``TMPDIR`` set to ``scratch`` unless it sets them itself
    (a policy that passes ``HOME`` through)."""
    return {"HOME": scratch, "TMPDIR": scratch, **env}
