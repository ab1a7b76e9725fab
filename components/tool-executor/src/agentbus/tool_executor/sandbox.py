"""The sandbox of every process the executor starts (shell.exec, git, python.test).

With bubblewrap (``bwrap``, Debian's ``bubblewrap``) a process gets its own mount view
in which only the system's programs and libraries (read-only), the caller's roots and
the run's scratch folder exist; no network unless the policy allows it; its own PID
namespace, so every descendant (also one that left with ``setsid -f``) dies with the
call; a fresh ``/proc`` (the executor's environment is not there to read). Where
mounting a fresh ``/proc`` is refused (Docker masks parts of its ``/proc``), processes
get no ``/proc`` at all; the PID namespace still ends them with the call. Resource
limits apply in any case (through ``prlimit``): address space (memory), CPU time,
processes (``RLIMIT_NPROC``, which root ignores, so also a per-call ``pids`` cgroup where
the v1 hierarchy is writable: every process of the call is killed through it) and no
core files.

Without a working ``bwrap`` (not installed, or user namespaces refused, as in a Docker
container under the default seccomp profile) processes run with the limits only,
confined by the path checks and the kill of their cgroup (or, without one, of their
process group and what a ``/proc`` scan finds); :func:`sandbox` says which mode applies
and why, and the service logs it at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("agentbus.tool_executor.sandbox")

SYSTEM_READ_ONLY = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf",
    "/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/gitattributes",
)  # fmt: skip
"""What every sandboxed process sees read-only (missing ones are skipped); never ``/etc``
as a whole (service env files with keys live there), ``/home``, ``/root`` or ``/proc``."""
PIDS_HIERARCHY = Path("/sys/fs/cgroup/pids")
_KILL_ROUNDS = 10
_stale_groups: set[Path] = set()
"""Groups of earlier calls whose removal failed (a killed process had not yet exited)."""


@dataclass(frozen=True, slots=True)
class Confinement:
    """What one process may touch: ``writable`` folders (the caller's roots), whether it
    may use the network, and its limits."""

    writable: tuple[Path, ...]
    network: bool = False
    processes: int = 512
    memory_bytes: int = 2 << 30
    python: bool = False
    """Also the executor's Python and its import path, read-only (python.test)."""
    cpu_seconds: int = 0
    """CPU time of each process (``RLIMIT_CPU``: SIGXCPU, then SIGKILL); 0: no limit."""
    readable: tuple[Path, ...] = ()
    """Folders visible read-only (an MCP server's ``read_roots``)."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How processes are confined here: ``bubblewrap``, or ``limits only`` and why."""

    bwrap: str | None
    reason: str
    proc: bool = True
    """Whether the sandbox mounts a fresh ``/proc`` (refused in a Docker container)."""

    def wrap(
        self, argv: Sequence[str], cwd: Path, scratch: Path, confine: Confinement
    ) -> list[str]:
        """``argv`` inside bubblewrap (as it is without one)."""
        if self.bwrap is None:
            return list(argv)
        wrapped = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-all"]
        if confine.network:
            wrapped.append("--share-net")
        if self.proc:
            wrapped += ["--proc", "/proc"]
        wrapped += ["--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a fresh tmpfs
        for path in (*SYSTEM_READ_ONLY, *(_python() if confine.python else ())):
            wrapped += ["--ro-bind-try", path, path]
        binds = [(folder, "--bind") for folder in (*confine.writable, scratch)]
        binds += [(folder, "--ro-bind") for folder in confine.readable]
        # Outer folders first: a read root inside a writable one is mounted over it (stays
        # read-only), and the other way round.
        for folder, how in sorted(binds, key=lambda bind: len(bind[0].parts)):
            wrapped += [how, str(folder), str(folder)]
        return [*wrapped, "--chdir", str(cwd), "--", *argv]


def visible(path: str, confine: Confinement) -> bool:
    """Whether ``path`` (resolved) exists inside the sandbox ``confine`` describes."""
    real = Path(os.path.realpath(path))
    shown = (*SYSTEM_READ_ONLY, *(_python() if confine.python else ()))
    folders = (*map(Path, shown), *confine.writable, *confine.readable)
    return any(real.is_relative_to(os.path.realpath(folder)) for folder in folders)


@cache
def _python() -> tuple[str, ...]:
    """The Python that python.test runs: its venv, its base and the folders on its import
    path (an editable install's sources hold the report plugin)."""
    pythons = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).parent)}
    pythons |= {entry for entry in sys.path if entry and os.path.isdir(entry)}
    pythons |= {os.path.realpath(p) for p in pythons}
    return tuple(sorted(pythons))


@cache
def sandbox() -> Sandbox:
    """Detected once: bubblewrap when it is installed and can make its namespaces here,
    with a fresh ``/proc`` where it may mount one (not in a Docker container)."""
    if os.environ.get("AGENTBUS_TOOLS_SANDBOX", "").lower() == "off":
        return Sandbox(None, "AGENTBUS_TOOLS_SANDBOX=off")
    found = shutil.which("bwrap")
    if found is None:
        return Sandbox(None, "bwrap is not installed (Debian: apt-get install bubblewrap)")
    refused = _probe(found, "--proc", "/proc")
    if refused is None:
        return Sandbox(found, f"bubblewrap ({found})")
    if _probe(found) is None:
        return Sandbox(
            found,
            f"bubblewrap without /proc ({found}; mounting a fresh /proc was refused: "
            f"{refused}; the PID namespace still ends every process with the call)",
            proc=False,
        )
    hint = "; in Docker: security_opt seccomp=unconfined" if "ermission" in refused else ""
    return Sandbox(None, f"bwrap cannot make its namespaces here ({refused}{hint})")


def _probe(bwrap: str, *extra: str) -> str | None:
    """Why a minimal bwrap run with ``extra`` fails here, or ``None`` when it works."""
    probe = [bwrap, "--unshare-all", "--ro-bind", "/", "/", *extra, "true"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if done.returncode == 0:
        return None
    return done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"


@contextlib.contextmanager
def pids_group(limit: int) -> Iterator[Path | None]:
    """A cgroup (v1 ``pids``) allowing ``limit`` processes for one call (or one MCP
    server), where this process may make one; afterwards every process in it is killed and
    it is removed, or, while a killed process is still exiting, removed by a later call.
    ``limit`` 0: none."""
    if limit <= 0:
        yield None
        return
    for stale in list(_stale_groups):
        if _removed(stale):
            _stale_groups.discard(stale)
    group = PIDS_HIERARCHY / "agentbus-tools" / uuid.uuid4().hex
    try:
        group.mkdir(parents=True)
        (group / "pids.max").write_text(str(limit))
    except OSError:
        yield None
        return
    try:
        yield group
    finally:
        kill_members(group)
        if not _removed(group):
            _stale_groups.add(group)


def kill_members(group: Path) -> None:
    """SIGKILL every process in ``group``; again while any remain (they may fork meanwhile,
    up to the group's limit). One file read a round: no scan of ``/proc``."""
    for _ in range(_KILL_ROUNDS):
        try:
            members = (group / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not members:
            return
        for member in members:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(member), signal.SIGKILL)


def _removed(group: Path) -> bool:
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        kill_members(group)
        return False
    return True


def limited(argv: Sequence[str], confine: Confinement) -> list[str]:
    """``argv`` under its resource limits, through util-linux's ``prlimit``: an exec rather
    than a ``preexec_fn``, which would make every spawn a full fork of the executor."""
    prlimit = _prlimit()
    if prlimit is None:
        return list(argv)
    memory, processes = confine.memory_bytes, confine.processes
    limits = [f"--as={memory}", f"--nproc={processes}", "--core=0"]
    if confine.cpu_seconds > 0:
        limits.append(f"--cpu={confine.cpu_seconds}:{confine.cpu_seconds + 1}")
    return [prlimit, *limits, "--", *argv]


@cache
def _prlimit() -> str | None:
    found = shutil.which("prlimit")
    if found is None:
        log.warning("prlimit (util-linux) is not installed: tool processes have no rlimits")
    return found


def joined(argv: Sequence[str], group: Path | None) -> list[str]:
    """``argv`` started by a ``/bin/sh`` that first moves itself into the call's cgroup, so
    every process the command ever makes is in it (joining from the parent after the start
    loses the race with the sandbox's first clone)."""
    if group is None:
        return list(argv)
    join = 'echo $$ > "$0" && exec "$@"'
    return ["/bin/sh", "-c", join, str(group / "cgroup.procs"), *argv]


__all__ = [
    "Confinement",
    "Sandbox",
    "joined",
    "kill_members",
    "limited",
    "pids_group",
    "sandbox",
    "visible",
]
