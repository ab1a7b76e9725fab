"""Safe path resolution: every path is resolved (symlinks followed) and must stay in a root.

Rules, in order:

* a path with a NUL byte, or longer than ``PATH_MAX``, is refused;
* relative paths are taken from the first root; ``~`` is not expanded;
* the path is resolved with :func:`os.path.realpath` (every symlink followed, ``..``
  collapsed) and must be a root or lie under one (``Path.is_relative_to``);
* files are opened with ``O_NOFOLLOW`` on the resolved path, so a symlink swapped
  in after the check is not followed, and checked again with ``fstat``;
* a regular file with more than one hard link is refused for reading and writing:
  its other names may be outside the roots, and we cannot find them;
* nothing is written inside a ``.git`` folder (nor a ``.git`` file): a repository's
  config, hooks and ``gitdir`` pointer decide what git runs and where, so only the
  ``git.*`` tools change a repository.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.errors import Refused, ToolFailed

PATH_MAX = 4096


def resolve(path: str, roots: Sequence[Path], *, cwd: Path | None = None) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; otherwise :class:`Refused`."""
    if not roots:
        raise Refused("the policy gives this caller no workspace roots")
    if "\x00" in path:
        raise Refused("the path contains a NUL byte")
    if not path or len(path) > PATH_MAX:
        raise Refused(f"the path must be 1 to {PATH_MAX} characters")
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = (cwd or roots[0]) / candidate
    real = Path(os.path.realpath(candidate))
    if not inside(real, roots):
        raise Refused(
            f"{path!r} resolves outside the workspace roots; use a path under "
            + ", ".join(str(r) for r in roots),
            path=path,
        )
    return real


def inside(real: Path, roots: Sequence[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def _check_single_link(fd: int, path: Path) -> os.stat_result:
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        raise Refused(
            f"{path} has {info.st_nlink} hard links; files with other names (possibly outside "
            "the workspace) are not read or written"
        )
    return info


def open_for_read(path: Path) -> int:
    """A file descriptor for reading the (already resolved) regular file ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ToolFailed(f"{path} does not exist", code=ErrorCode.NOT_FOUND) from None
    except OSError as exc:
        raise ToolFailed(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = _check_single_link(fd, path)
        if not stat.S_ISREG(info.st_mode):
            raise ToolFailed(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, limit: int) -> bytes:
    fd = open_for_read(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise ToolFailed(
                f"{path} is {size} bytes; the policy allows files up to {limit} bytes",
                code=ErrorCode.PAYLOAD_TOO_LARGE,
            )
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


GIT_FOLDER = ".git"


def refuse_git_internals(path: Path, roots: Sequence[Path]) -> None:
    """:class:`Refused` when the resolved ``path`` is, or lies in, a ``.git`` of the roots."""
    parts = next((path.relative_to(r).parts for r in roots if path.is_relative_to(r)), path.parts)
    if any(part.casefold() == GIT_FOLDER for part in parts):
        raise Refused(
            f"{path} is inside a repository's {GIT_FOLDER}: its config and hooks decide what git "
            "runs, so files there are not written; change the repository with the git.* tools"
        )


def write_bytes(path: Path, data: bytes, roots: Sequence[Path], *, create_dirs: bool) -> None:
    """Write ``data`` to the resolved ``path``; parent folders only inside the roots, and
    nothing inside a ``.git`` (:func:`refuse_git_internals`)."""
    refuse_git_internals(path, roots)
    parent = path.parent
    if not parent.exists():
        if not create_dirs:
            raise ToolFailed(f"{parent} does not exist (set create_dirs to create it)")
        parent.mkdir(parents=True, exist_ok=True)
        if not inside(Path(os.path.realpath(parent)), roots):  # raced by a symlink swap
            raise Refused(f"{parent} resolves outside the workspace roots")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ToolFailed(f"cannot open {path} for writing: {exc.strerror}") from None
    try:
        info = _check_single_link(fd, path)
        if not stat.S_ISREG(info.st_mode):
            raise ToolFailed(f"{path} is not a regular file")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
