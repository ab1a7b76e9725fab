"""Git tools on a repository inside the roots (GitPython): status, diff, commit.

A repository's own configuration can run programs (``core.fsmonitor``,
``core.hooksPath``, ``diff.external``, pagers, hooks), so every git command runs
with those overridden through ``GIT_CONFIG_COUNT`` and without the system
config, and commits skip hooks. The working tree must resolve inside the roots.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import git
from pydantic import Field

from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import ToolFailed

_SAFE_CONFIG = {
    "core.fsmonitor": "false",
    "core.hooksPath": os.devnull,
    "core.pager": "cat",
    "diff.external": "",
    "core.sshCommand": "false",
    "protocol.allow": "never",
}


def safe_env(ctx: ToolContext) -> dict[str, str]:
    env = ctx.policy.process_env()
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": str(len(_SAFE_CONFIG)),
        }
    )
    for index, (key, value) in enumerate(_SAFE_CONFIG.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    env.setdefault("HOME", "/nonexistent")  # no ~/.gitconfig unless HOME is passed through
    return env


def _repo(path: str, ctx: ToolContext) -> git.Repo:
    folder = paths.resolve(path, ctx.roots)
    try:
        repo = git.Repo(folder, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ToolFailed(
            f"{folder} is not the top of a git repository", code=ErrorCode.NOT_FOUND
        ) from None
    if repo.working_tree_dir is None:
        raise ToolFailed(f"{folder} is a bare repository")
    paths.resolve(str(repo.working_tree_dir), ctx.roots)
    return repo


def _git(repo: git.Repo, ctx: ToolContext, *args: str) -> str:
    env: dict[str, Any] = safe_env(ctx)
    try:
        with repo.git.custom_environment(**env):
            out: str = repo.git.execute(["git", *args], env=env)
    except git.GitCommandError as exc:
        raise ToolFailed(f"git {args[0]} failed: {exc.stderr.strip() or exc}") from None
    return out


class RepoArgs(ToolArgs):
    repo: str = Field(default=".", description="Top folder of the repository.")


@tool("git.status", risk=Risk.LOW)
async def status(args: RepoArgs, ctx: ToolContext) -> ToolOutcome:
    """Branch and changed files (porcelain v1) of a repository in the workspace."""
    repo = _repo(args.repo, ctx)
    out = await asyncio.to_thread(_git, repo, ctx, "status", "--porcelain=v1", "--branch")
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
    repo = _repo(args.repo, ctx)
    root = Path(str(repo.working_tree_dir))
    selected = [str(paths.resolve(p, ctx.roots, cwd=root)) for p in args.paths]
    argv = ["diff", "--no-color", "--no-ext-diff", *(["--cached"] if args.staged else [])]
    out = await asyncio.to_thread(_git, repo, ctx, *argv, "--", *selected)
    data = out.encode("utf-8")
    truncated = len(data) > ctx.policy.max_output
    text = data[: ctx.policy.max_output].decode("utf-8", errors="ignore")
    return ToolOutcome(text, truncated=truncated)


class CommitArgs(RepoArgs):
    message: str = Field(min_length=1, max_length=20_000)
    paths: list[str] = Field(
        default_factory=list, max_length=1000, description="Files to stage first; empty: all."
    )
    author_name: str = Field(default="agentbus tool executor", max_length=200)
    author_email: str = Field(default="tools@agentbus.invalid", max_length=200)


def _commit(repo: git.Repo, args: CommitArgs, ctx: ToolContext, selected: list[str]) -> str:
    _git(repo, ctx, "add", "--", *selected) if selected else _git(repo, ctx, "add", "-A")
    actor = git.Actor(args.author_name, args.author_email)
    commit = repo.index.commit(args.message, author=actor, committer=actor, skip_hooks=True)
    return str(commit.hexsha)


@tool("git.commit", risk=Risk.MEDIUM)
async def commit(args: CommitArgs, ctx: ToolContext) -> ToolOutcome:
    """Stage the given files (or every change) and commit them; hooks do not run."""
    repo = _repo(args.repo, ctx)
    root = Path(str(repo.working_tree_dir))
    selected = [str(paths.resolve(p, ctx.roots, cwd=root)) for p in args.paths]
    sha = await asyncio.to_thread(_commit, repo, args, ctx, selected)
    return ToolOutcome(f"committed {sha}", data={"sha": sha})


TOOLS = (status, diff, commit)
