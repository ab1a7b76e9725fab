"""File tools: read, write, edit, list, glob, grep. Every path goes through :mod:`..paths`:
checked against the roots, then every file and folder opened beneath its root (so a folder
swapped for a link meanwhile cannot lead outside); glob and grep walk with descriptors
(``os.fwalk``, links never followed) in a thread, under the call's deadline, with bounded
results. Reading tools take the policy's read roots too; writing tools only its roots.
Names that are not UTF-8 are shown escaped (``\\xNN``) and work as paths again."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import regex
from pydantic import Field, JsonValue

from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed
from agentbus.tool_executor.globbing import Pattern, States
from agentbus.tool_executor.paths import shown, shown_name

MAX_ENTRIES = 5000


def _cap(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolFailed(f"{shown(path)} is not UTF-8 text") from None


class ReadArgs(ToolArgs):
    path: str = Field(description="File to read, relative to the first root or absolute.")
    start_line: int = Field(default=1, ge=1, description="First line to return (1-based).")
    end_line: int | None = Field(default=None, ge=1, description="Last line (inclusive).")


@tool("fs.read", risk=Risk.LOW)
async def read(args: ReadArgs, ctx: ToolContext) -> ToolOutcome:
    """Read a UTF-8 text file, optionally a range of lines (1-based, inclusive)."""
    path = paths.resolve(args.path, ctx.policy.readable_roots)
    text = _text(paths.read_bytes(path, ctx.policy.max_file_bytes, ctx.policy.readable_roots), path)
    lines = text.splitlines(keepends=True)
    end = len(lines) if args.end_line is None else min(args.end_line, len(lines))
    selected = "".join(lines[args.start_line - 1 : end])
    content, truncated = _cap(selected, ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated,
        data={
            "path": shown(path),
            "total_lines": len(lines),
            "start_line": args.start_line,
            "end_line": end,
        },
    )


class WriteArgs(ToolArgs):
    path: str
    content: str
    create_dirs: bool = Field(default=False, description="Create missing parent folders.")


@tool("fs.write", risk=Risk.MEDIUM)
async def write(args: WriteArgs, ctx: ToolContext) -> ToolOutcome:
    """Write a UTF-8 text file (created or replaced) inside the workspace."""
    path = paths.resolve(args.path, ctx.policy.readable_roots)  # a read root: refused below
    data = args.content.encode("utf-8")
    if len(data) > ctx.policy.max_file_bytes:
        raise ToolFailed(
            "the content is larger than the policy's max_file_bytes",
            code=ErrorCode.PAYLOAD_TOO_LARGE,
        )
    _write(path, data, ctx, create_dirs=args.create_dirs)
    return ToolOutcome(
        f"wrote {len(data)} bytes to {shown(path)}", data={"path": shown(path), "bytes": len(data)}
    )


def _write(path: Path, data: bytes, ctx: ToolContext, *, create_dirs: bool) -> None:
    policy = ctx.policy
    paths.write_bytes(path, data, policy.roots, policy.read_roots, create_dirs=create_dirs)


class EditArgs(ToolArgs):
    path: str
    search: str = Field(min_length=1, description="Exact text to find; must occur exactly once.")
    replace: str


@tool("fs.edit", risk=Risk.MEDIUM)
async def edit(args: EditArgs, ctx: ToolContext) -> ToolOutcome:
    """Replace one exact occurrence of `search` with `replace`; fails if absent or not unique."""
    path = paths.resolve(args.path, ctx.policy.readable_roots)
    paths.write_root(path, ctx.policy.roots, ctx.policy.read_roots)  # before reading anything
    text = _text(paths.read_bytes(path, ctx.policy.max_file_bytes, ctx.roots), path)
    count = text.count(args.search)
    if count == 0:
        raise ToolFailed(
            f"the search text does not occur in {shown(path)}; read the file and copy the "
            "exact text",
            occurrences=0,
        )
    if count > 1:
        raise ToolFailed(
            f"the search text occurs {count} times in {shown(path)}; include more "
            "surrounding lines so it is unique",
            occurrences=count,
        )
    updated = text.replace(args.search, args.replace, 1)
    _write(path, updated.encode("utf-8"), ctx, create_dirs=False)
    line = text[: text.index(args.search)].count("\n") + 1
    return ToolOutcome(
        f"edited {shown(path)} at line {line}", data={"path": shown(path), "line": line}
    )


class ListArgs(ToolArgs):
    path: str = Field(default=".", description="Folder to list.")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


@tool("fs.list", risk=Risk.LOW)
async def list_dir(args: ListArgs, ctx: ToolContext) -> ToolOutcome:
    """List a folder: name, kind (file, dir, link, other) and size. Links are not followed."""
    path = paths.resolve(args.path, ctx.policy.readable_roots)
    entries: list[JsonValue] = []
    folder = paths.open_dir(path, ctx.policy.readable_roots)
    try:
        with os.scandir(folder) as scan:
            for entry in sorted(scan, key=lambda e: e.name):
                try:
                    info = entry.stat(follow_symlinks=False)  # fstatat at the folder's descriptor
                except FileNotFoundError:
                    continue  # removed meanwhile
                kind, size = _kind(info.st_mode), info.st_size
                entries.append({"name": shown_name(entry.name), "kind": kind, "size": size})
                if len(entries) >= MAX_ENTRIES:
                    break
    finally:
        os.close(folder)
    lines = [f"{e['kind']:5} {e['size']:>10} {e['name']}" for e in entries if isinstance(e, dict)]
    content, truncated = _cap("\n".join(lines), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or len(entries) >= MAX_ENTRIES,
        data={"path": shown(path), "entries": entries},
    )


def _pattern(pattern: str) -> Pattern:
    """``pattern`` checked and compiled (runs of ``**`` cost what one does: see globbing)."""
    if "\x00" in pattern:
        raise Refused("the pattern contains a NUL byte")
    pure = PurePosixPath(pattern)
    if pure.is_absolute() or ".." in pure.parts:
        raise Refused("glob patterns are relative to the folder and may not contain '..'")
    try:
        return Pattern(pattern)
    except ValueError as exc:
        raise ToolFailed(str(exc)) from None


Walked = tuple[PurePosixPath, list[str], list[str], int]


def _walk(folder: int, deadline: float, tool_name: str) -> Iterator[Walked]:
    """``os.fwalk`` from the folder descriptor ``folder`` (each step opened at its parent's
    descriptor, links never followed): the folder's path relative to it, its folders (links
    to folders moved to the files), its files, its descriptor. ToolFailed at ``deadline``."""
    for top, folders, files, fd in os.fwalk(".", dir_fd=folder, follow_symlinks=False):
        if time.monotonic() > deadline:
            raise ToolFailed(
                f"{tool_name} ran out of time in {shown_name(top)}; narrow the pattern or the "
                "folder",
                code=ErrorCode.TIMEOUT,
            )
        links = [name for name in folders if _is_link(name, fd)]
        folders[:] = sorted(name for name in folders if name not in links)
        files.extend(links)
        yield PurePosixPath(top), folders, files, fd


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return True  # gone or unreadable: not entered


class GlobArgs(ToolArgs):
    pattern: str = Field(min_length=1, max_length=500, description="e.g. **/*.py")
    path: str = Field(default=".", description="Folder the pattern is relative to.")


def _glob(base: Path, pattern: Pattern, roots: tuple[Path, ...], deadline: float) -> list[str]:
    """Matches of ``pattern`` under ``base`` (at most MAX_ENTRIES), found before ``deadline``
    (``time.monotonic``) by a descriptor walk that enters only folders the pattern can reach;
    a matching link is listed only when it leads inside the roots. Runs in a thread."""
    folder = paths.open_dir(base, roots)
    found: list[str] = []
    states: dict[PurePosixPath, States] = {PurePosixPath("."): pattern.start()}
    try:
        for top, folders, files, fd in _walk(folder, deadline, f"fs.glob of {pattern!r}"):
            here = states.pop(top, frozenset())
            entered = []
            for name in folders:
                after = pattern.step(here, name, folder=True)
                if pattern.matches(after, folder=True):
                    found.append(shown_name(str(top / name)))
                if pattern.descend(after):
                    states[top / name] = after
                    entered.append(name)
            folders[:] = entered
            for name in sorted(files):
                after = pattern.step(here, name, folder=False)
                if pattern.matches(after, folder=False) and _shown_link(
                    base, top / name, fd, roots
                ):
                    found.append(shown_name(str(top / name)))
            if len(found) >= MAX_ENTRIES:
                break
    finally:
        os.close(folder)
    return found[:MAX_ENTRIES]


def _shown_link(base: Path, relative: PurePosixPath, dir_fd: int, roots: tuple[Path, ...]) -> bool:
    """A file is shown; a link only when it leads inside the roots (names only: nothing is
    opened through it)."""
    if not _is_link(relative.name, dir_fd):
        return True
    try:
        return paths.inside(Path(os.path.realpath(base / relative)), roots)
    except OSError:
        return False  # changed while resolved: not shown


@tool("fs.glob", risk=Risk.LOW)
async def glob(args: GlobArgs, ctx: ToolContext) -> ToolOutcome:
    """Find files matching a glob pattern under a folder; matches outside the roots are dropped."""
    roots = ctx.policy.readable_roots
    base = paths.resolve(args.path, roots)
    pattern = _pattern(args.pattern)
    deadline = time.monotonic() + ctx.timeout(None)
    found = sorted(await asyncio.to_thread(_glob, base, pattern, roots, deadline))
    content, truncated = _cap("\n".join(found), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or len(found) >= MAX_ENTRIES,
        data={"path": shown(base), "matches": list[JsonValue](found)},
    )


class GrepArgs(ToolArgs):
    pattern: str = Field(min_length=1, max_length=1000, description="Python regular expression.")
    path: str = Field(default=".", description="File or folder to search.")
    glob: str = Field(default="*", max_length=200, description="Only file names matching this.")
    ignore_case: bool = False
    max_matches: int = Field(default=200, ge=1, le=10000)


@tool("fs.grep", risk=Risk.LOW)
async def grep(args: GrepArgs, ctx: ToolContext) -> ToolOutcome:
    """Search files for a regular expression; returns path:line:text for each match."""
    base = paths.resolve(args.path, ctx.policy.readable_roots)
    try:
        pattern = regex.compile(args.pattern, regex.IGNORECASE if args.ignore_case else 0)
    except regex.error as exc:
        raise ToolFailed(f"invalid regular expression: {exc}") from None
    budget = ctx.timeout(None)
    # A thread: the search reads files and matches, and must not hold up the event loop.
    search = _Search(pattern, args, ctx.policy.max_file_bytes, time.monotonic() + budget)
    await asyncio.to_thread(search.run, base, ctx.policy.readable_roots)
    content, truncated = _cap("\n".join(search.matches), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or search.full or search.files >= MAX_ENTRIES,
        data={"matches": len(search.matches), "skipped_files": search.skipped},
    )


class _Search:
    """``path:line:text`` of each matching line under a file or folder, opened beneath its
    root and walked by descriptors; files skipped (links, hard-linked, too large,
    unreadable) are counted, never read.

    Every match gets the time left before ``deadline``: a pattern that backtracks
    without end fails the call instead of holding a thread."""

    def __init__(
        self, pattern: regex.Pattern[str], args: GrepArgs, limit: int, deadline: float
    ) -> None:
        self.pattern, self.args, self.limit, self.deadline = pattern, args, limit, deadline
        self.matches: list[str] = []
        self.skipped = 0
        self.files = 0

    @property
    def full(self) -> bool:
        return len(self.matches) >= self.args.max_matches

    def run(self, base: Path, roots: tuple[Path, ...]) -> None:
        fd = paths.open_path(base, roots)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self._folder(fd)
            else:
                self._text(paths.read_fd(fd, self.limit, shown(base)), PurePosixPath(base.name))
        finally:
            os.close(fd)

    def _folder(self, folder: int) -> None:
        for top, folders, files, fd in _walk(folder, self.deadline, "fs.grep"):
            folders[:] = [name for name in folders if not name.startswith(".git")]
            for name in sorted(files):
                if not PurePosixPath(name).match(self.args.glob):
                    continue
                self.files += 1
                try:
                    data = paths.read_at(fd, name, self.limit, shown_name(str(top / name)))
                except (Refused, ToolFailed):
                    self.skipped += 1  # a link, hard-linked, too large, unreadable: never read
                    continue
                self._text(data, top / name)
                if self.full or self.files >= MAX_ENTRIES:
                    return

    def _text(self, data: bytes, relative: PurePosixPath) -> None:
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            try:
                found = self.pattern.search(  # concurrent: the GIL is released while it matches
                    line, concurrent=True, timeout=max(0.0, self.deadline - time.monotonic())
                )
            except TimeoutError:
                raise ToolFailed(
                    f"fs.grep ran out of time at {shown_name(relative.name)}:{number}; "
                    "simplify the pattern (nested repetition like (a+)+ backtracks) or search "
                    "fewer files",
                    code=ErrorCode.TIMEOUT,
                ) from None
            if found:
                self.matches.append(f"{shown_name(str(relative))}:{number}:{line}")
                if self.full:
                    return


TOOLS = (read, write, edit, list_dir, glob, grep)
