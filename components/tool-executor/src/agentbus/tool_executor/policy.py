"""Policies per caller identity, loaded from a TOML file (``AGENTBUS_TOOLS_POLICY``).

::

    [executor]
    relays = ["operator", "mcp"]     # identities allowed to call on behalf of another identity

    [policy.coder]
    roots = ["${WORKSPACE}"]         # every path must resolve inside one of these
    read_roots = ["/srv/docs"]       # readable (fs.read/list/glob/grep, git.status/diff),
                                     # never written; the most specific root decides, so a
                                     # read root inside a writable root stays read-only
    tools = ["fs.*", "shell.exec", "git.*", "python.test"]
    commands = ["ls", "cat", "true"]  # argv[0] allow-list for shell.exec (runners need shell)
    shell = false                    # shell strings (always high risk) allowed at all?
    hosts = ["pypi.org", "127.0.0.1:8080"]        # http.fetch allow-list, checked on every hop
    env = ["LANG"]                   # variables passed through to processes (default: none;
                                     # credential-looking names are refused, see environment.py)
    medium = "ask"                   # medium-risk calls: "run" or "ask"
    max_output = 65536               # bytes of output kept
    timeout = 30.0                   # seconds, the most a call may run
    network = false                  # may processes use the network (in the sandbox)?
    max_processes = 512              # processes one call may have at once
    max_memory_mb = 2048             # address space of each process
    max_cpu_seconds = 60             # CPU time of each process (default: timeout x cores)
    [policy.coder.risk]
    "git.commit" = "high"            # raise (never lower) a tool's risk

    [mcp_servers.docs]               # external MCP servers whose tools are imported
    command = "python3"
    args = ["-m", "docs_server"]
    risk = "medium"

Read roots: fs.write and fs.edit (and git.commit) refuse a path whose most specific
root is a read root, also when reached through a link from a writable root; shell.exec
and python.test path-check against the writable roots only; in the bubblewrap sandbox
read roots are mounted read-only (without it, git.status and git.diff still take no
optional locks there, so they write nothing).

A caller without a policy gets ``[policy.default]`` when the file has one, else
a policy that allows nothing. A policy can only narrow: unknown keys are errors.
The executor reads the file again when it changes (:func:`describe_changes` says
what an edit changed; :func:`mcp_server_changes` which imported servers it touched).
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agentbus.framework import ConfigError, load_toml
from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.validation import explain
from agentbus.tool_executor.environment import bus_pattern, child_environment, credential_pattern
from agentbus.tool_executor.sandbox import Confinement

POLICY_ENV = "AGENTBUS_TOOLS_POLICY"
DEFAULT_POLICY_FILE = "tools.toml"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

_RANK = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


def higher(a: Risk, b: Risk) -> Risk:
    return a if _RANK[a] >= _RANK[b] else b


class Policy(BaseModel):
    """What one caller identity may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roots: tuple[Path, ...] = ()
    read_roots: tuple[Path, ...] = Field(
        default=(), description="Folders readable but never written (see the module doc)."
    )
    tools: tuple[str, ...] = Field(default=(), description="Tool names or fnmatch patterns.")
    commands: tuple[str, ...] = ()
    shell: bool = False
    hosts: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    path: str = Field(default=DEFAULT_PATH, description="PATH given to processes.")
    medium: Literal["run", "ask"] = "ask"
    risk: dict[str, Risk] = Field(default_factory=dict)
    max_output: int = Field(default=64 * 1024, gt=0, le=16 * 1024 * 1024)
    max_argument_bytes: int = Field(default=256 * 1024, gt=0)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    max_file_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    network: bool = Field(
        default=False, description="May processes (shell.exec, python.test) use the network?"
    )
    max_processes: int = Field(default=512, gt=0, le=100_000, description="Per call.")
    max_memory_mb: int = Field(default=2048, gt=0, description="Address space per process.")
    max_cpu_seconds: int | None = Field(
        default=None, gt=0, description="CPU time per process (default: timeout x cores)."
    )

    @field_validator("roots", "read_roots")
    @classmethod
    def _real_roots(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        resolved = []
        for root in roots:
            if not root.is_absolute():
                raise ValueError(f"root {root} must be an absolute path")
            resolved.append(Path(os.path.realpath(root)))
        return tuple(resolved)

    @model_validator(mode="after")
    def _roots_once(self) -> Policy:
        if both := sorted(set(self.roots) & set(self.read_roots)):
            raise ValueError(
                f"{', '.join(map(str, both))} is in roots and in read_roots; keep it in one "
                "(roots: writable, read_roots: read-only)"
            )
        return self

    @property
    def readable_roots(self) -> tuple[Path, ...]:
        """Every root this caller may read: the writable ones first (relative paths start
        at the first), then the read roots."""
        return (*self.roots, *self.read_roots)

    @field_validator("env")
    @classmethod
    def _no_credentials(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if (pattern := credential_pattern(name)) is not None:
                raise ValueError(
                    f"{name} looks like a credential ({pattern}) and would be readable by every "
                    "command this caller runs; remove it from env (an MCP server that needs a "
                    "key gets it in its own [mcp_servers.<name>] env table)"
                )
        return names

    def allows_tool(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.tools)

    def risk_for(self, name: str, declared: Risk) -> Risk:
        """The tool's risk, raised (never lowered) by the policy's ``risk`` table."""
        risk = declared
        for pattern, raised in self.risk.items():
            if fnmatch.fnmatchcase(name, pattern):
                risk = higher(risk, raised)
        return risk

    def confinement(self, *extra_writable: Path, python: bool = False) -> Confinement:
        """The sandbox of this caller's processes: its roots (and ``extra_writable``)
        writable, its read roots read-only, the rest of the system read-only or absent
        (``sandbox.py``); ``python``: the executor's Python too (python.test)."""
        return Confinement(
            writable=(*self.roots, *extra_writable),
            readable=self.read_roots,
            network=self.network,
            processes=self.max_processes,
            memory_bytes=self.max_memory_mb << 20,
            python=python,
            cpu_seconds=self.max_cpu_seconds or math.ceil(self.timeout * (os.cpu_count() or 1)),
        )

    def process_env(self) -> dict[str, str]:
        """The environment of a child process: PATH (``path``), the locale and the
        pass-through list, nothing else (HOME and TMPDIR: the run's scratch folder)."""
        return child_environment(path=self.path, passed=self.env)


NOTHING = Policy()
"""The policy of an unknown caller when no ``default`` is configured: no tools at all."""


class McpServerConfig(BaseModel):
    """An external MCP server (stdio) whose tools join the catalog as ``mcp.<name>.<tool>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = Field(default=None, description="Default: the server's private HOME.")
    risk: Risk = Risk.MEDIUM
    # The server's sandbox for its whole life (mcp_import.py; sandbox.py):
    sandbox: bool = Field(default=True, description="false: unconfined, logged as a warning.")
    roots: tuple[Path, ...] = Field(default=(), description="Folders it may write.")
    read_roots: tuple[Path, ...] = Field(default=(), description="Folders it may read.")
    python: bool = Field(default=False, description="The executor's Python, read-only.")
    network: bool = False
    max_processes: int = Field(default=256, gt=0, le=100_000, description="Threads count.")
    max_memory_mb: int = Field(default=2048, gt=0, description="Address space per process.")
    max_cpu_seconds: int | None = Field(default=None, gt=0, description="Per process; none.")

    @field_validator("roots", "read_roots")
    @classmethod
    def _real_folders(cls, folders: tuple[Path, ...]) -> tuple[Path, ...]:
        for folder in folders:
            if not folder.is_absolute():
                raise ValueError(f"{folder} must be an absolute path")
        return tuple(Path(os.path.realpath(folder)) for folder in folders)

    def confinement(self, scratch: Path) -> Confinement:
        """The server's sandbox: its roots and ``scratch`` (its HOME) writable, its read
        roots read-only, the system's programs read-only, the rest absent."""
        return Confinement(
            writable=(*self.roots, scratch),
            readable=self.read_roots,
            network=self.network,
            processes=self.max_processes,
            memory_bytes=self.max_memory_mb << 20,
            python=self.python,
            cpu_seconds=self.max_cpu_seconds or 0,
        )

    @field_validator("env")
    @classmethod
    def _no_bus_settings(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if (pattern := bus_pattern(name)) is not None:
                raise ValueError(
                    f"{name} ({pattern}) is the bus's own connection setting; an MCP server "
                    "never gets the executor's bus credentials: remove it from env"
                )
        return env


class ExecutorSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    relays: tuple[str, ...] = Field(
        default=(), description="Source components allowed to name another caller identity."
    )


class PolicyFile(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: ExecutorSection = Field(default_factory=ExecutorSection)
    policy: dict[str, Policy] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)

    def for_caller(self, caller: str) -> Policy:
        return self.policy.get(caller) or self.policy.get("default") or NOTHING

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "policy") -> PolicyFile:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {explain(exc)}") from None

    @classmethod
    def load(cls, path: Path | None = None) -> PolicyFile:
        """From ``path``, else ``$AGENTBUS_TOOLS_POLICY``, else ``tools.toml``; missing: empty."""
        if path is None:
            path = policy_path()
            if not os.environ.get(POLICY_ENV) and not path.exists():
                return cls()  # no file, no policies: every caller gets NOTHING
        return cls.parse(load_toml(path), str(path))


def policy_path() -> Path:
    """``$AGENTBUS_TOOLS_POLICY``, else ``tools.toml`` in the working folder."""
    return Path(os.environ.get(POLICY_ENV) or DEFAULT_POLICY_FILE)


def _differences(
    old: Mapping[str, BaseModel], new: Mapping[str, BaseModel]
) -> tuple[list[str], list[str], list[str]]:
    """Names added, removed and changed from ``old`` to ``new``."""
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(name for name in old.keys() & new.keys() if old[name] != new[name])
    return added, removed, changed


def _changed_fields(old: BaseModel, new: BaseModel) -> list[str]:
    return [name for name in type(old).model_fields if getattr(old, name) != getattr(new, name)]


def describe_changes(old: PolicyFile, new: PolicyFile) -> str:
    """What an edit changed, for the log: callers added, removed or changed (which keys),
    relays. MCP servers are left to :func:`mcp_server_changes`."""
    added, removed, changed = _differences(old.policy, new.policy)
    parts = []
    if added:
        parts.append(f"callers added: {', '.join(added)}")
    if removed:
        parts.append(f"callers removed: {', '.join(removed)}")
    if changed:
        details = (
            f"{name} ({', '.join(_changed_fields(old.policy[name], new.policy[name]))})"
            for name in changed
        )
        parts.append(f"callers changed: {', '.join(details)}")
    if old.executor.relays != new.executor.relays:
        parts.append(f"relays: {list(old.executor.relays)} -> {list(new.executor.relays)}")
    return "; ".join(parts) or "no policy changed"


def mcp_server_changes(old: PolicyFile, new: PolicyFile) -> list[str]:
    """``added x``, ``removed y``, ``changed z``: the [mcp_servers] that differ, by name."""
    added, removed, changed = _differences(old.mcp_servers, new.mcp_servers)
    return (
        [f"added {name}" for name in added]
        + [f"removed {name}" for name in removed]
        + [f"changed {name}" for name in changed]
    )
