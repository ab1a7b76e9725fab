"""Safe paths: every path is checked against the roots, then opened *beneath* its root.

Rules, in order:

* a path with a NUL byte, or longer than ``PATH_MAX``, is refused;
* relative paths are taken from the first root; ``~`` is not expanded;
* a name shown escaped (``\\xNN`` for a byte that is not UTF-8, as fs.list and fs.glob
  show it) works as a path again: the name as given when it exists, else the bytes the
  escapes stand for (:func:`unescaped`);
* the path is resolved with :func:`os.path.realpath` and must be a root or lie under one:
  that check gives the clear error message, but it is not what keeps a call inside;
* every file and folder is then *opened beneath its root* (:func:`open_beneath`):
  ``openat2(root_fd, relative, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` where the kernel
  has it (:data:`use_openat2`), else one ``O_NOFOLLOW`` descriptor per folder on the way.
  A folder swapped for a symbolic link between the check and the open makes the open
  fail; it can never lead outside. Folders are created at a descriptor too (``mkdirat``);
* a regular file with more than one hard link is refused for reading and writing:
  its other names may be outside the roots, and we cannot find them;
* writes go only under a writable root: the most specific root holding a path decides,
  so a read-only root inside a writable one stays read-only (:func:`write_root`);
* nothing is written inside a ``.git`` folder (nor a ``.git`` file): a repository's
  config, hooks and ``gitdir`` pointer decide what git runs and where, so only the
  ``git.*`` tools change a repository.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import re
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.errors import Refused, ToolFailed

PATH_MAX = 4096
GIT_FOLDER = ".git"

_OPENAT2 = {"x86_64": 437, "aarch64": 437}
"""``openat2``'s system call number (the same in the generic table and on x86_64)."""
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_FOLDER = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How folders are opened: no ``O_DIRECTORY`` (a link then fails with ``ELOOP``, not an
ambiguous ``ENOTDIR``), ``O_NONBLOCK`` (a FIFO does not block); ``fstat`` checks the kind."""
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def _openat2(dir_fd: int, relative: str, flags: int, mode: int) -> int:
    """``openat2(dir_fd, relative, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``;
    ``OSError`` as ``os.open`` raises it (``EXDEV``/``ELOOP``: it would leave or follow)."""
    number = _OPENAT2.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), relative)
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, _RESOLVE)
    encoded = os.fsencode(relative)
    for _ in range(16):  # EAGAIN: a concurrent rename; the kernel asks to try again
        fd = _libc.syscall(
            ctypes.c_long(number),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), relative)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), relative)


def _probe_openat2() -> bool:
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(_openat2(root, ".", _FOLDER, 0))
    except OSError:
        return False  # ENOSYS (before Linux 5.6), EPERM (a seccomp filter), another machine
    finally:
        os.close(root)
    return True


use_openat2: bool = _probe_openat2()
"""Open with ``openat2`` (True where the kernel has it) or walk with ``O_NOFOLLOW``
descriptors (False): both keep every open beneath its root; tests run both."""


# -- names -----------------------------------------------------------------------------


def shown_name(name: str) -> str:
    """``name`` as JSON can carry it: a name that is not UTF-8 (Python holds its bytes as
    lone surrogates) shows each such byte as ``\\xNN``, instead of failing the whole reply.
    :func:`resolve` takes the shown form back."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def shown(path: PurePath | str) -> str:
    return shown_name(str(path))


_ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")
"""What :func:`shown_name` makes of a byte that is not UTF-8 (always 0x80 or above)."""


def unescaped(path: str) -> str:
    """``path`` with each ``\\xNN`` (NN 80 to ff) back as the byte it shows, held the way
    Python holds such bytes in a name (``surrogateescape``)."""
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), path)


# -- the check -------------------------------------------------------------------------


def resolve(path: str, roots: Sequence[Path], *, cwd: Path | None = None) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; otherwise :class:`Refused`.

    This check explains a refusal; the open beneath the root (:func:`open_beneath`) is what
    keeps a file or folder that changes after it inside."""
    if not roots:
        raise Refused("the policy gives this caller no workspace roots")
    if "\x00" in path:
        raise Refused("the path contains a NUL byte")
    if not path or len(path) > PATH_MAX:
        raise Refused(f"the path must be 1 to {PATH_MAX} characters")
    base = cwd or roots[0]
    candidate = _absolute(path, base)
    if (other := unescaped(path)) != path:
        candidate = _usable(candidate, _absolute(other, base))
    try:
        real = Path(os.path.realpath(candidate))
    except OSError as exc:  # a link on the way changed while it was read
        raise ToolFailed(f"{shown_name(path)} cannot be resolved: {exc.strerror}") from None
    if not inside(real, roots):
        raise Refused(
            f"{shown_name(path)!r} resolves outside the workspace roots; use a path under "
            + ", ".join(shown(r) for r in roots),
            path=shown_name(path),
        )
    return real


def _absolute(path: str, base: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _usable(literal: Path, escaped: Path) -> Path:
    """The name as given when it exists, else the unescaped one when that exists; for a new
    file, the one whose folder exists (the literal name first)."""
    for check in (os.path.lexists, lambda p: os.path.lexists(p.parent)):
        for candidate in (literal, escaped):
            if check(candidate):
                return candidate
    return literal


def inside(real: Path, roots: Sequence[Path]) -> bool:
    return any(real == root or real.is_relative_to(root) for root in roots)


def root_of(real: Path, roots: Sequence[Path]) -> Path:
    """The most specific of ``roots`` holding the resolved ``real``."""
    holding = [root for root in roots if real == root or real.is_relative_to(root)]
    if not holding:
        raise Refused(f"{shown(real)} resolves outside the workspace roots")
    return max(holding, key=lambda root: len(root.parts))


def write_root(real: Path, writable: Sequence[Path], read_only: Sequence[Path]) -> Path:
    """The root that ``real`` is written under; :class:`Refused` when the most specific root
    holding it is read-only (a read root inside a writable one stays read-only, a writable
    root inside a read root is writable)."""
    root = root_of(real, (*writable, *read_only))
    if root not in writable:
        places = ", ".join(shown(r) for r in writable) or "none: this caller may only read"
        raise Refused(
            f"{shown(real)} is under the read-only root {shown(root)}: this caller may read "
            f"it but not write it; write under a writable root ({places})",
            path=shown(real),
        )
    return root


def refuse_git_internals(path: Path, roots: Sequence[Path]) -> None:
    """:class:`Refused` when the resolved ``path`` is, or lies in, a ``.git`` of the roots."""
    parts = next((path.relative_to(r).parts for r in roots if path.is_relative_to(r)), path.parts)
    if any(part.casefold() == GIT_FOLDER for part in parts):
        raise Refused(
            f"{shown(path)} is inside a repository's {GIT_FOLDER}: its config and hooks decide "
            "what git runs, so files there are not written; change the repository with the "
            "git.* tools"
        )


# -- opening beneath a root ------------------------------------------------------------


def _failure(exc: OSError, what: str) -> Refused | ToolFailed:
    if exc.errno in (errno.ELOOP, errno.EXDEV):
        return Refused(
            f"{what} changed while it was opened (a folder on its way is now a symbolic link "
            "or leads out of the root); nothing was read or written there, try again"
        )
    if exc.errno == errno.ENOENT:
        return ToolFailed(f"{what} does not exist", code=ErrorCode.NOT_FOUND)
    if exc.errno == errno.ENOTDIR:
        return ToolFailed(
            f"a folder on the way to {what} is not a folder", code=ErrorCode.NOT_FOUND
        )
    return ToolFailed(f"cannot open {what}: {exc.strerror}")


def _parts(relative: PurePath | str) -> tuple[str, ...]:
    parts = tuple(part for part in PurePosixPath(relative).parts if part != ".")
    if any(part in ("..", "/") for part in parts):
        raise Refused(f"{shown(relative)} must be relative and may not contain '..'")
    return parts


def _open_root(root: Path) -> int:
    """The root itself (the policy's resolved, trusted path)."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ToolFailed(
            f"the workspace root {shown(root)} cannot be opened: {exc.strerror}"
        ) from None


def _at(dir_fd: int, name: str, flags: int, mode: int = 0) -> int:
    """One name opened at ``dir_fd``, never through a link."""
    if use_openat2:
        return _openat2(dir_fd, name, flags, mode)
    return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=dir_fd)


def _folder_at(dir_fd: int, name: str) -> int:
    fd = _at(dir_fd, name, _FOLDER)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)
    return fd


def _walk(root_fd: int, parts: Sequence[str], *, create: bool = False) -> int:
    """The folder ``parts`` beneath ``root_fd``, one descriptor per step (made where missing
    when ``create``); the caller closes what it gets."""
    fd = os.dup(root_fd)
    try:
        for name in parts:
            try:
                step = _folder_at(fd, name)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made meanwhile: opened below
                    os.mkdir(name, 0o755, dir_fd=fd)
                step = _folder_at(fd, name)
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_beneath(root: Path, relative: PurePath | str, flags: int, mode: int = 0) -> int:
    """``relative`` opened beneath ``root`` with ``flags``: by ``openat2`` in one call, or one
    ``O_NOFOLLOW`` folder descriptor per step; ``OSError`` if it fails (``ELOOP``/``EXDEV``:
    something on the way is a link). Never opens anything outside ``root``."""
    parts = _parts(relative)
    root_fd = _open_root(root)
    try:
        if not parts:
            return os.open(".", flags & ~os.O_CREAT, dir_fd=root_fd)
        if use_openat2:
            return _openat2(root_fd, "/".join(parts), flags, mode)
        folder = _walk(root_fd, parts[:-1])
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=folder)
        finally:
            os.close(folder)
    finally:
        os.close(root_fd)


def open_folder(
    root: Path, relative: PurePath | str, *, create: bool = False, what: str | None = None
) -> int:
    """A descriptor of the folder ``relative`` beneath ``root`` (missing folders made at a
    descriptor when ``create``); :class:`Refused`/:class:`ToolFailed` otherwise."""
    what = what or shown(root / relative)
    parts = _parts(relative)
    try:
        if not create:
            fd = open_beneath(root, PurePosixPath(*parts) if parts else ".", _FOLDER)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise ToolFailed(f"{what} is not a folder", code=ErrorCode.NOT_FOUND)
            return fd
        root_fd = _open_root(root)
        try:
            return _walk(root_fd, parts, create=True)
        finally:
            os.close(root_fd)
    except OSError as exc:
        raise _failure(exc, what) from None


def open_dir(path: Path, roots: Sequence[Path]) -> int:
    """The resolved folder ``path``, opened beneath the most specific root holding it."""
    root = root_of(path, roots)
    return open_folder(root, path.relative_to(root), what=shown(path))


def open_path(path: Path, roots: Sequence[Path]) -> int:
    """The resolved file or folder ``path`` for reading, opened beneath the most specific root
    holding it (``fstat`` says which it is)."""
    root = root_of(path, roots)
    try:
        return open_beneath(root, path.relative_to(root), _READ)
    except OSError as exc:
        raise _failure(exc, shown(path)) from None


def check_regular(fd: int, what: str) -> os.stat_result:
    """``fd``'s ``fstat``, if it is a regular file with one name; otherwise closes nothing
    and raises (a file with other names may have one outside the roots)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ToolFailed(f"{what} is not a regular file")
    if info.st_nlink > 1:
        raise Refused(
            f"{what} has {info.st_nlink} hard links; files with other names (possibly outside "
            "the workspace) are not read or written"
        )
    return info


def read_fd(fd: int, limit: int, what: str) -> bytes:
    """All of the regular file at ``fd``, at most ``limit`` bytes (a file that grows past
    it while read fails the same way)."""
    size = check_regular(fd, what).st_size
    too_large = ToolFailed(
        f"{what} is {size} bytes; the policy allows files up to {limit} bytes",
        code=ErrorCode.PAYLOAD_TOO_LARGE,
    )
    if size > limit:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(1 << 16, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise too_large
    return b"".join(chunks)


def read_at(dir_fd: int, name: str, limit: int, what: str) -> bytes:
    """The file ``name`` in the folder ``dir_fd`` (never through a link), as :func:`read_fd`."""
    try:
        fd = _at(dir_fd, name, _READ)
    except OSError as exc:
        raise _failure(exc, what) from None
    try:
        return read_fd(fd, limit, what)
    finally:
        os.close(fd)


def read_bytes(path: Path, limit: int, roots: Sequence[Path]) -> bytes:
    """The resolved regular file ``path``, opened beneath its root, at most ``limit`` bytes."""
    fd = open_path(path, roots)
    try:
        return read_fd(fd, limit, shown(path))
    finally:
        os.close(fd)


def write_bytes(
    path: Path,
    data: bytes,
    writable: Sequence[Path],
    read_only: Sequence[Path] = (),
    *,
    create_dirs: bool,
) -> None:
    """Write ``data`` to the resolved ``path`` beneath its writable root (:func:`write_root`);
    parent folders made at descriptors when ``create_dirs``; nothing inside a ``.git``."""
    refuse_git_internals(path, (*writable, *read_only))
    root = write_root(path, writable, read_only)
    relative = PurePosixPath(path.relative_to(root))
    if not relative.parts:
        raise ToolFailed(f"{shown(path)} is a workspace root, not a file")
    parent = relative.parent
    try:
        folder = open_folder(root, parent, create=create_dirs, what=shown(path.parent))
    except ToolFailed as exc:
        if exc.code == ErrorCode.NOT_FOUND and not create_dirs:
            raise ToolFailed(
                f"{shown(path.parent)} does not exist (set create_dirs to create it)",
                code=ErrorCode.NOT_FOUND,
            ) from None
        raise
    try:
        try:
            fd = _at(folder, relative.name, _WRITE, 0o644)
        except OSError as exc:
            raise _failure(exc, shown(path)) from None
    finally:
        os.close(folder)
    try:
        check_regular(fd, shown(path))
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
