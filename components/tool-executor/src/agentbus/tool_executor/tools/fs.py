"""File tools: read, write, edit, list, glob, grep. Every path goes through :mod:`..paths`."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path, PurePosixPath

import regex
from pydantic import Field, JsonValue

from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed

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
        raise ToolFailed(f"{path} is not UTF-8 text") from None


class ReadArgs(ToolArgs):
    path: str = Field(description="File to read, relative to the first root or absolute.")
    start_line: int = Field(default=1, ge=1, description="First line to return (1-based).")
    end_line: int | None = Field(default=None, ge=1, description="Last line (inclusive).")


@tool("fs.read", risk=Risk.LOW)
async def read(args: ReadArgs, ctx: ToolContext) -> ToolOutcome:
    """Read a UTF-8 text file, optionally a range of lines (1-based, inclusive)."""
    path = paths.resolve(args.path, ctx.roots)
    text = _text(paths.read_bytes(path, ctx.policy.max_file_bytes), path)
    lines = text.splitlines(keepends=True)
    end = len(lines) if args.end_line is None else min(args.end_line, len(lines))
    selected = "".join(lines[args.start_line - 1 : end])
    content, truncated = _cap(selected, ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated,
        data={
            "path": str(path),
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
    path = paths.resolve(args.path, ctx.roots)
    data = args.content.encode("utf-8")
    if len(data) > ctx.policy.max_file_bytes:
        raise ToolFailed(
            "the content is larger than the policy's max_file_bytes",
            code=ErrorCode.PAYLOAD_TOO_LARGE,
        )
    paths.write_bytes(path, data, ctx.roots, create_dirs=args.create_dirs)
    return ToolOutcome(
        f"wrote {len(data)} bytes to {path}", data={"path": str(path), "bytes": len(data)}
    )


class EditArgs(ToolArgs):
    path: str
    search: str = Field(min_length=1, description="Exact text to find; must occur exactly once.")
    replace: str


@tool("fs.edit", risk=Risk.MEDIUM)
async def edit(args: EditArgs, ctx: ToolContext) -> ToolOutcome:
    """Replace one exact occurrence of `search` with `replace`; fails if absent or not unique."""
    path = paths.resolve(args.path, ctx.roots)
    text = _text(paths.read_bytes(path, ctx.policy.max_file_bytes), path)
    count = text.count(args.search)
    if count == 0:
        raise ToolFailed(
            f"the search text does not occur in {path}; read the file and copy the exact text",
            occurrences=0,
        )
    if count > 1:
        raise ToolFailed(
            f"the search text occurs {count} times in {path}; include more "
            "surrounding lines so it is unique",
            occurrences=count,
        )
    updated = text.replace(args.search, args.replace, 1)
    paths.write_bytes(path, updated.encode("utf-8"), ctx.roots, create_dirs=False)
    line = text[: text.index(args.search)].count("\n") + 1
    return ToolOutcome(f"edited {path} at line {line}", data={"path": str(path), "line": line})


class ListArgs(ToolArgs):
    path: str = Field(default=".", description="Folder to list.")


def shown_name(name: str) -> str:
    """``name`` as JSON can carry it: a name that is not UTF-8 (Python holds its bytes as
    lone surrogates) shows each such byte as ``\\xNN``, instead of failing the whole reply."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


@tool("fs.list", risk=Risk.LOW)
async def list_dir(args: ListArgs, ctx: ToolContext) -> ToolOutcome:
    """List a folder: name, kind (file, dir, link, other) and size. Links are not followed."""
    path = paths.resolve(args.path, ctx.roots)
    if not path.is_dir():
        raise ToolFailed(f"{path} is not a folder", code=ErrorCode.NOT_FOUND)
    entries: list[JsonValue] = []
    with os.scandir(path) as scan:
        for entry in sorted(scan, key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            kind, size = _kind(info.st_mode), info.st_size
            entries.append({"name": shown_name(entry.name), "kind": kind, "size": size})
            if len(entries) >= MAX_ENTRIES:
                break
    lines = [f"{e['kind']:5} {e['size']:>10} {e['name']}" for e in entries if isinstance(e, dict)]
    content, truncated = _cap("\n".join(lines), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or len(entries) >= MAX_ENTRIES,
        data={"path": str(path), "entries": entries},
    )


def _relative_pattern(pattern: str) -> str:
    """``pattern`` checked, with runs of ``**`` collapsed into one (``**/**/x`` matches what
    ``**/x`` does, but walks the tree once per ``**``: a few make the walk explode)."""
    if "\x00" in pattern:
        raise Refused("the pattern contains a NUL byte")
    pure = PurePosixPath(pattern)
    if pure.is_absolute() or ".." in pure.parts:
        raise Refused("glob patterns are relative to the folder and may not contain '..'")
    parts: list[str] = []
    for part in pure.parts:
        if not (part == "**" and parts and parts[-1] == "**"):
            parts.append(part)
    return "/".join(parts)


class GlobArgs(ToolArgs):
    pattern: str = Field(min_length=1, max_length=500, description="e.g. **/*.py")
    path: str = Field(default=".", description="Folder the pattern is relative to.")


def _glob(base: Path, pattern: str, roots: tuple[Path, ...], deadline: float) -> list[str]:
    """Matches of ``pattern`` under ``base`` inside the roots (at most MAX_ENTRIES), found
    before ``deadline`` (``time.monotonic``); runs in a thread, off the event loop."""
    found: list[str] = []
    for match in base.glob(pattern):
        if time.monotonic() > deadline:
            raise ToolFailed(
                f"fs.glob of {pattern!r} ran out of time after {len(found)} matches; narrow the "
                "pattern or the folder",
                code=ErrorCode.TIMEOUT,
            )
        if paths.inside(Path(os.path.realpath(match)), roots):
            found.append(shown_name(str(match.relative_to(base))))
        if len(found) >= MAX_ENTRIES:
            break
    return found


@tool("fs.glob", risk=Risk.LOW)
async def glob(args: GlobArgs, ctx: ToolContext) -> ToolOutcome:
    """Find files matching a glob pattern under a folder; matches outside the roots are dropped."""
    base = paths.resolve(args.path, ctx.roots)
    pattern = _relative_pattern(args.pattern)
    deadline = time.monotonic() + ctx.timeout(None)
    found = sorted(await asyncio.to_thread(_glob, base, pattern, ctx.roots, deadline))
    content, truncated = _cap("\n".join(found), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or len(found) >= MAX_ENTRIES,
        data={"path": str(base), "matches": list[JsonValue](found)},
    )


class GrepArgs(ToolArgs):
    pattern: str = Field(min_length=1, max_length=1000, description="Python regular expression.")
    path: str = Field(default=".", description="File or folder to search.")
    glob: str = Field(default="*", max_length=200, description="Only file names matching this.")
    ignore_case: bool = False
    max_matches: int = Field(default=200, ge=1, le=10000)


def _files(base: Path, name_glob: str, roots: tuple[Path, ...]) -> list[Path]:
    if base.is_file():
        return [base]
    out: list[Path] = []
    for folder, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".git"))
        for name in sorted(files):
            candidate = Path(folder) / name
            if PurePosixPath(name).match(name_glob) and not candidate.is_symlink():
                out.append(candidate)
        if len(out) > MAX_ENTRIES:
            break
    return [f for f in out if paths.inside(Path(os.path.realpath(f)), roots)]


@tool("fs.grep", risk=Risk.LOW)
async def grep(args: GrepArgs, ctx: ToolContext) -> ToolOutcome:
    """Search files for a regular expression; returns path:line:text for each match."""
    base = paths.resolve(args.path, ctx.roots)
    try:
        pattern = regex.compile(args.pattern, regex.IGNORECASE if args.ignore_case else 0)
    except regex.error as exc:
        raise ToolFailed(f"invalid regular expression: {exc}") from None
    budget = ctx.timeout(None)
    # A thread: the search reads files and matches, and must not hold up the event loop.
    matches, skipped = await asyncio.to_thread(
        _search, pattern, base, args, ctx, time.monotonic() + budget
    )
    content, truncated = _cap("\n".join(matches), ctx.policy.max_output)
    return ToolOutcome(
        content,
        truncated=truncated or len(matches) >= args.max_matches,
        data={"matches": len(matches), "skipped_files": skipped},
    )


def _search(
    pattern: regex.Pattern[str], base: Path, args: GrepArgs, ctx: ToolContext, deadline: float
) -> tuple[list[str], int]:
    """``path:line:text`` of each matching line, and how many files were skipped.

    Every match gets the time left before ``deadline``: a pattern that backtracks
    without end fails the call instead of holding a thread."""
    matches: list[str] = []
    skipped = 0
    for file in _files(base, args.glob, ctx.roots):
        try:
            data = paths.read_bytes(file, ctx.policy.max_file_bytes)
        except (Refused, ToolFailed):
            skipped += 1  # hard-linked, too large, unreadable: never read
            continue
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            try:
                found = pattern.search(  # concurrent: the GIL is released while it matches
                    line, concurrent=True, timeout=max(0.0, deadline - time.monotonic())
                )
            except TimeoutError:
                raise ToolFailed(
                    f"fs.grep ran out of time at {file.name}:{number}; "
                    "simplify the pattern (nested repetition like (a+)+ backtracks) or search "
                    "fewer files",
                    code=ErrorCode.TIMEOUT,
                ) from None
            if found:
                rel = file.relative_to(base) if file != base else Path(file.name)
                matches.append(f"{shown_name(str(rel))}:{number}:{line}")
                if len(matches) >= args.max_matches:
                    return matches, skipped
    return matches, skipped


TOOLS = (read, write, edit, list_dir, glob, grep)
