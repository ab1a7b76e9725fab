"""Git tools on a repository inside the roots: status, diff, commit.

``git`` runs as a child process like ``shell.exec`` (:func:`run_process`: the
policy's environment only, its own session, capped output, the policy's timeout).
GitPython runs none (its ``execute`` copies the executor's whole environment, bus
credentials included). A repository's own configuration can run programs
(``core.fsmonitor``, ``core.hooksPath``, ``diff.external``, pagers, hooks,
``commit.gpgSign`` with ``gpg.program``), so every git command runs with those
overridden through ``GIT_CONFIG_COUNT`` and without the system config, and
commits skip hooks. Filter, diff and merge drivers have names of the repository's
choosing that no override reaches, so a repository whose config defines one is
refused; and its working tree, git dir and common dir must resolve inside the roots
(``_repo``). The ``fs.*`` tools write nothing inside ``.git``. git.status and git.diff
also work in the policy's read roots (no optional locks: git writes no index there);
git.commit only under a writable root.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pydantic import Field

from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed
from agentbus.tool_executor.processes import ProcessResult, run_process

_SAFE_CONFIG = {
    "core.fsmonitor": "false",
    "core.hooksPath": os.devnull,
    "core.pager": "cat",
    "diff.external": "",
    "core.sshCommand": "false",
    "protocol.allow": "never",
    "commit.gpgSign": "false",
}


def safe_env(ctx: ToolContext) -> dict[str, str]:
    """The policy's process environment plus the overrides (HOME: the run's scratch folder,
    so no ~/.gitconfig, unless the policy passes HOME through)."""
    env = ctx.policy.process_env()
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",  # status and diff refresh no index (read roots)
            "GIT_CONFIG_COUNT": str(len(_SAFE_CONFIG)),
        }
    )
    for index, (key, value) in enumerate(_SAFE_CONFIG.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


_RUNS_A_COMMAND = re.compile(
    r"(filter\..+\.(clean|smudge|process)|diff\..+\.(textconv|command)|merge\..+\.driver)",
    re.IGNORECASE,
)
"""Repository config keys that make git run a program whose name no override can reach (a
filter or diff driver is named by ``.gitattributes``): such a repository is refused."""


async def _repo(path: str, ctx: ToolContext, *, write: bool = False) -> Path:
    """The top folder of the repository at ``path``, checked before any git command that could
    run the repository's programs: its working tree, git dir and common dir (a ``.git`` file,
    ``core.worktree`` and ``commondir`` may point anywhere) resolve inside the roots, and its
    config names no filter, diff or merge driver. ``write``: all three under writable roots
    (not read roots)."""
    roots = ctx.policy.readable_roots
    folder = paths.resolve(path, roots)
    if write:
        paths.write_root(folder, ctx.policy.roots, ctx.policy.read_roots)
    if not folder.is_dir():
        raise ToolFailed(f"{folder} is not a folder", code=ErrorCode.NOT_FOUND)
    layout = ("--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir")
    try:
        shown = await _git(folder, ctx, "rev-parse", *layout, sandboxed=False)
    except ToolFailed as exc:
        raise ToolFailed(
            f"{folder} is not the top of a git repository ({exc.message})",
            code=ErrorCode.NOT_FOUND,
        ) from None
    found = shown.output.splitlines()
    if len(found) != 3:
        raise ToolFailed(f"{folder} is a bare repository or not one git understands")
    top, git_dir, common_dir = (paths.resolve(p, roots) for p in found)  # or Refused
    for place in (top, git_dir, common_dir) if write else ():
        paths.write_root(place, ctx.policy.roots, ctx.policy.read_roots)
    if top != folder:
        raise ToolFailed(
            f"{folder} is not the top of a git repository (its top is {top})",
            code=ErrorCode.NOT_FOUND,
        )
    config_list = ("config", "--list", "--show-scope", "--includes", "-z")
    listed = await _git(top, ctx, *config_list, sandboxed=False)
    if listed.truncated:  # what was cut off could be a driver
        raise Refused(
            f"the repository's config is larger than this caller's max_output "
            f"({ctx.policy.max_output} bytes), so it cannot be checked; raise max_output"
        )
    fields = listed.output.split("\0")
    for scope, entry in zip(fields[::2], fields[1::2], strict=False):
        key = entry.split("\n", 1)[0]
        if scope != "command" and _RUNS_A_COMMAND.fullmatch(key):
            raise Refused(
                f"the repository's {scope} config sets {key}, which makes git run a program; "
                "the git tools refuse such a repository (remove the setting with a person's "
                "review, outside the agent's tools)"
            )
    return top


async def _git(
    root: Path,
    ctx: ToolContext,
    *args: str,
    extra: dict[str, str] | None = None,
    sandboxed: bool = True,
) -> ProcessResult:
    """``git <args>`` in ``root`` with :func:`safe_env`, in the sandbox; only after
    :func:`_repo` checked ``root``, except the read-only commands that check it (outside the
    sandbox: ``sandboxed=False``, so that they see where the repository really points)."""
    executable = shutil.which("git", path=ctx.policy.path)
    if executable is None:
        raise ToolFailed(f"git is not installed on the policy's path {ctx.policy.path}")
    result = await run_process(
        [executable, *args],
        cwd=root,
        env=safe_env(ctx) | (extra or {}),
        timeout=ctx.timeout(None),
        max_output=ctx.policy.max_output,
        confine=ctx.policy.confinement() if sandboxed else None,
    )
    if result.timed_out:
        raise ToolFailed(
            f"git {args[0]} did not finish within {ctx.timeout(None):g}s; raise the policy's "
            "timeout or make the repository smaller",
            code=ErrorCode.TIMEOUT,
        )
    if result.exit_code != 0:
        raise ToolFailed(f"git {args[0]} failed: {result.output.strip()}")
    return result


class RepoArgs(ToolArgs):
    repo: str = Field(default=".", description="Top folder of the repository.")


@tool("git.status", risk=Risk.LOW)
async def status(args: RepoArgs, ctx: ToolContext) -> ToolOutcome:
    """Branch and changed files (porcelain v1) of a repository in the workspace."""
    root = await _repo(args.repo, ctx)
    out = (await _git(root, ctx, "status", "--porcelain=v1", "--branch")).output.rstrip("\n")
    lines = out.splitlines()
    branch = lines[0][3:] if lines and lines[0].startswith("## ") else ""
    changes = [{"status": line[:2], "path": line[3:]} for line in lines[1:]]
    return ToolOutcome(out, data={"branch": branch, "changes": changes})  # type: ignore[dict-item]


class DiffArgs(RepoArgs):
    staged: bool = Field(default=False, description="Diff the index against HEAD.")
    paths: list[str] = Field(default_factory=list, max_length=200)


@tool("git.diff", risk=Risk.LOW)
async def diff(args: DiffArgs, ctx: ToolContext) -> ToolOutcome:
    """Unified diff of the working tree (or the index, with staged) of a repository."""
    root = await _repo(args.repo, ctx)
    selected = [str(paths.resolve(p, ctx.policy.readable_roots, cwd=root)) for p in args.paths]
    argv = [
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        *(["--cached"] if args.staged else []),
    ]
    result = await _git(root, ctx, *argv, "--", *selected)
    text = result.output if result.truncated else result.output.rstrip("\n")
    return ToolOutcome(text, truncated=result.truncated)


class CommitArgs(RepoArgs):
    message: str = Field(min_length=1, max_length=20_000)
    paths: list[str] = Field(
        default_factory=list, max_length=1000, description="Files to stage first; empty: all."
    )
    author_name: str = Field(default="agentbus tool executor", max_length=200)
    author_email: str = Field(default="tools@agentbus.invalid", max_length=200)


def _identity(args: CommitArgs) -> dict[str, str]:
    return {
        f"GIT_{role}_{part}": value
        for role in ("AUTHOR", "COMMITTER")
        for part, value in (("NAME", args.author_name), ("EMAIL", args.author_email))
    }


@tool("git.commit", risk=Risk.MEDIUM)
async def commit(args: CommitArgs, ctx: ToolContext) -> ToolOutcome:
    """Stage the given files (or every change) and commit them; hooks do not run."""
    root = await _repo(args.repo, ctx, write=True)
    selected = [str(paths.resolve(p, ctx.roots, cwd=root)) for p in args.paths]
    await _git(root, ctx, "add", "--", *selected) if selected else await _git(
        root, ctx, "add", "-A"
    )
    # --allow-empty and verbatim: as GitPython's index commit did (the message exactly as given).
    commit_argv = ["commit", "-q", "--no-verify", "--allow-empty", "--cleanup=verbatim"]
    await _git(root, ctx, *commit_argv, "-m", args.message, extra=_identity(args))
    sha = (await _git(root, ctx, "rev-parse", "HEAD")).output.strip()
    return ToolOutcome(f"committed {sha}", data={"sha": sha})


TOOLS = (status, diff, commit)
