"""Git work for flows: a separate worktree on a new branch, edits, one commit (GitPython).

The component's checked-out tree is never touched: each change happens in a
worktree under a temporary folder, on branch ``maintainer/<component>/<slug>``,
and the worktree is removed afterwards (the branch and its commit stay).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from git import Actor, GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo

from agentbus.maintainer.errors import FlowError

AUTHOR = Actor("agentbus maintainer", "maintainer@agentbus.invalid")
_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    return _SLUG_RE.sub("-", text).strip("-.")[:60] or "change"


@dataclass(frozen=True, slots=True)
class Checkout:
    """A worktree of the component's repository on a fresh branch."""

    repo: Repo
    root: Path
    component_dir: Path
    branch: str
    base_commit: str

    def commit(self, paths: list[Path], message: str) -> str:
        """Commit ``paths`` (inside the worktree) on the branch; return the commit sha."""
        relative = [str(p.relative_to(self.root)) for p in paths]
        self.repo.index.add(relative)
        commit = self.repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        return commit.hexsha


def open_repo(component_dir: Path) -> tuple[Repo, Path]:
    """The repository holding the component, and the component's path inside it."""
    try:
        repo = Repo(component_dir, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise FlowError(f"{component_dir} is not inside a git repository") from None
    if repo.working_tree_dir is None:
        raise FlowError(f"{component_dir}: the repository is bare")
    root = Path(repo.working_tree_dir).resolve()
    return repo, component_dir.resolve().relative_to(root)


def head_commit(component_dir: Path) -> str:
    repo, _ = open_repo(component_dir)
    with repo:
        return repo.head.commit.hexsha


@contextmanager
def checkout(component_dir: Path, component: str, change: str) -> Iterator[Checkout]:
    """A worktree at the repository's HEAD on a new branch; removed on exit."""
    repo, relative = open_repo(component_dir)
    with repo:  # GitPython keeps `git cat-file` processes per Repo until it is closed
        base = repo.head.commit.hexsha
        branch = f"maintainer/{component}/{slug(change)}-{base[:8]}"
        suffix = 1
        existing = {h.name for h in repo.heads}
        while branch in existing:
            suffix += 1
            branch = f"maintainer/{component}/{slug(change)}-{base[:8]}-{suffix}"
        parent = Path(tempfile.mkdtemp(prefix=f"agentbus-{component}-"))
        root = parent / "worktree"
        try:
            repo.git.worktree("add", "-b", branch, str(root), base)
        except GitCommandError as exc:
            shutil.rmtree(parent, ignore_errors=True)
            raise FlowError(f"git worktree add failed: {exc.stderr.strip()}") from None
        try:
            with Repo(root) as work:
                yield Checkout(work, root, root / relative, branch, base)
        finally:
            try:
                repo.git.worktree("remove", "--force", str(root))
            except GitCommandError:
                repo.git.worktree("prune")
            shutil.rmtree(parent, ignore_errors=True)


def integrate(component_dir: Path, branch: str) -> bool:
    """Fast-forward the repository's checked-out branch to ``branch`` (after a promotion).

    Only a fast-forward: when the branch moved meanwhile, or the head is detached,
    nothing changes and ``False`` says so (the branch stays for a person to merge).
    """
    repo, _ = open_repo(component_dir)
    with repo:
        if repo.head.is_detached:
            return False
        try:
            repo.git.merge("--ff-only", branch)
        except GitCommandError:
            return False
        return True
