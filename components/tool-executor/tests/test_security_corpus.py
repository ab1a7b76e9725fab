"""The security corpus: one table of attacks, each refused or contained, nothing outside changed.

Every case runs against a real executor on a real nats-server, in a fresh
workspace ``ws/`` next to a sentinel folder ``outside/`` holding a secret. A
case expects either a refusal (the error code) or a completed call whose result
shows containment (``check``). Either way the test then asserts that nothing
outside the workspace changed, the secret never appears in the reply, and no
request reached the "internal" HTTP server.

Placeholders in arguments: ``{ws}``, ``{outside}``, ``{web}`` (an allowed
loopback server), ``{internal}`` (a loopback server no policy allows) and
``{internal_port}``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from executor_helpers import SECRET, FakeWeb, Workspace
from race_helpers import Swapper

from agentbus.framework import RemoteError
from agentbus.interfaces.catalog.tools import (
    APPROVALS_DECIDE,
    TOOLS_EXECUTE,
    ApprovalRequired,
    Completed,
    DecideRequest,
    ExecuteRequest,
)
from agentbus.tool_executor.sandbox import sandbox

Check = Callable[[Completed, Workspace], None]
Setup = Callable[[Workspace, FakeWeb, FakeWeb], None]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    tool: str
    arguments: dict[str, Any]
    expect: str
    """An error code (``forbidden``, ``schema_violation``, ...) or ``contained``."""
    check: Check | None = None
    setup: Setup | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    caller: str = "agent"
    approve: bool = False
    """A high-risk call: a person approves it first (to test what it can do once run)."""
    needs_sandbox: bool = False
    """Holds only inside bubblewrap (a PID namespace): skipped, saying so, without one."""


# -- setups --------------------------------------------------------------------------


def link_file(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.ws / "link_out").symlink_to(ws.outside / "secret.txt")


def link_dir(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.ws / "linkdir").symlink_to(ws.outside, target_is_directory=True)


def dangling(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.ws / "dangling").symlink_to(ws.outside / "created-through-link.txt")


def hard_link(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    os.link(ws.outside / "secret.txt", ws.ws / "hard.txt")


def evil_script(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    script = ws.ws / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {ws.outside}/pwned\n", encoding="utf-8")
    script.chmod(0o755)


def redirects(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    web.routes["/to-internal"] = (302, {"Location": f"{internal.base}/admin"}, b"")
    web.routes["/to-metadata"] = (302, {"Location": "http://169.254.169.254/latest/"}, b"")
    web.routes["/to-file"] = (302, {"Location": "file:///etc/passwd"}, b"")
    web.routes["/to-localhost"] = (302, {"Location": f"http://localhost:{web.port}/x"}, b"")
    web.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    web.routes["/big"] = (200, {}, b"x" * 1_000_000)


def fsmonitor_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = ws.ws / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    hook = f"touch {ws.outside}/fsmonitor-ran; false"
    subprocess.run([*git, "config", "core.fsmonitor", hook], check=True)
    (repo / "a.txt").write_text("a\n", encoding="utf-8")


CREDENTIALS = {
    name: f"{SECRET}-{name}"
    for name in (
        "AGENTBUS_NATS_PASSWORD",
        "AGENTBUS_NATS_TOKEN",
        "AGENTBUS_NATS_CREDS_FILE",
        "OPENAI_API_KEY",
    )
}
"""Set in the executor's own environment for every case: no process it starts may see them
(their values contain SECRET, which no reply may show)."""


def env_printing_filter(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A repository whose clean filter (run by `git add`) stores git's environment as a.txt."""
    repo = ws.ws / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "filter.dump.clean", "env"], check=True)
    (repo / ".gitattributes").write_text("a.txt filter=dump\n", encoding="utf-8")
    (repo / "a.txt").write_text("a\n", encoding="utf-8")


def textconv_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A repository whose diff driver would run a program on `git diff`."""
    repo = ws.ws / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "diff.run.textconv", f"touch {ws.outside}/textconv-ran; cat"])
    (repo / ".gitattributes").write_text("a.txt diff=run\n", encoding="utf-8")
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    (repo / "a.txt").write_text("b\n", encoding="utf-8")


BAD_NAME = b"bad\xffname.txt"
"""A file name that is not UTF-8 (legal on Linux)."""


def non_utf8_name(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    with open(os.path.join(os.fsencode(ws.ws), BAD_NAME), "wb") as out:
        out.write(b"needle\n")


def bad_name_shown(result: Completed, ws: Workspace) -> None:
    assert "bad\\xffname.txt" in result.content
    assert "file.txt" in result.content or "needle" in result.content


def deep_tree(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    folder = ws.ws / "deep"
    for level in range(14):
        folder = folder / f"d{level}"
    folder.mkdir(parents=True)
    (folder / "x").write_text("x\n", encoding="utf-8")


def deep_x_found(result: Completed, ws: Workspace) -> None:
    assert result.content.endswith("d13/x"), result.content


def plain_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> Path:
    repo = ws.ws / "repo"
    repo.mkdir(exist_ok=True)
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    (repo / "sub").mkdir(exist_ok=True)
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    return repo


def _git_config(repo: Path, *pairs: tuple[str, str], where: str = "--local") -> None:
    for key, value in pairs:
        subprocess.run(["git", "-C", str(repo), "config", where, key, value], check=True)


def pwning_filter_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """clean and smudge filters that would write outside, on every file."""
    repo = plain_repo(ws, web, internal)
    pwn = f"touch {ws.outside}/pwned; cat"
    _git_config(repo, ("filter.x.clean", pwn), ("filter.x.smudge", pwn))
    (repo / ".gitattributes").write_text("* filter=x\n", encoding="utf-8")


def pwning_process_filter_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = plain_repo(ws, web, internal)
    _git_config(repo, ("filter.x.process", f"touch {ws.outside}/pwned"))
    (repo / ".gitattributes").write_text("* filter=x\n", encoding="utf-8")


def included_filter_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """The filter hides in a file the repository's config includes."""
    repo = plain_repo(ws, web, internal)
    extra = ws.ws / "extra.gitconfig"
    extra.write_text(f'[filter "x"]\n\tclean = touch {ws.outside}/pwned; cat\n')
    _git_config(repo, ("include.path", str(extra)))
    (repo / ".gitattributes").write_text("* filter=x\n", encoding="utf-8")


def worktree_config_filter_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = plain_repo(ws, web, internal)
    _git_config(repo, ("extensions.worktreeConfig", "true"))
    _git_config(repo, ("filter.x.clean", f"touch {ws.outside}/pwned; cat"), where="--worktree")
    (repo / ".gitattributes").write_text("* filter=x\n", encoding="utf-8")


def long_config_filter_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A filter at the end of a config longer than the caller's max_output (4096 bytes)."""
    repo = plain_repo(ws, web, internal)
    padding = "".join(f"\tkey{n} = {'v' * 60}\n" for n in range(120))
    with (repo / ".git" / "config").open("a", encoding="utf-8") as config:
        config.write(f'[padding]\n{padding}[filter "x"]\n\tclean = touch {ws.outside}/pwned\n')
    (repo / ".gitattributes").write_text("* filter=x\n", encoding="utf-8")


def merge_driver_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = plain_repo(ws, web, internal)
    _git_config(repo, ("merge.x.driver", f"touch {ws.outside}/pwned"))


def diff_command_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = plain_repo(ws, web, internal)
    _git_config(repo, ("diff.x.command", f"touch {ws.outside}/pwned"))
    (repo / ".gitattributes").write_text("* diff=x\n", encoding="utf-8")


def _victim(ws: Workspace) -> Path:
    """A repository outside the workspace (made before the snapshot, so any change shows)."""
    victim = ws.outside / "victim"
    victim.mkdir()
    git = ["git", "-C", str(victim), "-c", "user.name=v", "-c", "user.email=v@v.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (victim / "v.txt").write_text("victim\n", encoding="utf-8")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v"], check=True)
    return victim


def gitdir_outside_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A `.git` file pointing at a repository outside the roots."""
    victim = _victim(ws)
    repo = ws.ws / "repo"
    repo.mkdir()
    (repo / ".git").write_text(f"gitdir: {victim}/.git\n", encoding="utf-8")
    (repo / "a.txt").write_text("a\n", encoding="utf-8")


def worktree_outside_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    repo = plain_repo(ws, web, internal)
    _git_config(repo, ("core.worktree", str(ws.outside)))


def commondir_outside_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A git dir whose `commondir` file points at an outside repository's objects and refs."""
    victim = _victim(ws)
    repo = plain_repo(ws, web, internal)
    (repo / ".git" / "commondir").write_text(f"{victim}/.git\n", encoding="utf-8")


def linked_git_folder(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    """A symlink in the workspace to a repository's .git (it resolves into .git)."""
    repo = plain_repo(ws, web, internal)
    (ws.ws / "gitlink").symlink_to(repo / ".git", target_is_directory=True)


def env_asserting_tests(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    names = sorted(CREDENTIALS)
    (ws.ws / "proj").mkdir()
    (ws.ws / "proj" / "test_env.py").write_text(
        "import os\n\n\ndef test_no_credentials():\n"
        f"    assert [n for n in {names!r} if n in os.environ] == []\n"
        "    assert 'AGENTBUS_TEST_SECRET' not in os.environ\n",
        encoding="utf-8",
    )


def big_file(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.ws / "big.txt").write_text("line of text\n" * 50_000, encoding="utf-8")


# -- checks --------------------------------------------------------------------------


def literal_output(expected: str) -> Check:
    def check(result: Completed, ws: Workspace) -> None:
        assert result.exit_code == 0
        assert result.content.strip() == expected.format(outside=ws.outside)

    return check


def no_secret_files(result: Completed, ws: Workspace) -> None:
    assert "secret" not in result.content


CHILD_VARIABLES = {
    "PATH",
    "LANG",
    "LC_ALL",  # only when the executor has one
    "HOME",  # the run's scratch folder
    "TMPDIR",  # the same
    "AGENTBUS_TEST_PASSED",
    "PWD",  # some env(1) implementations add nothing, sh adds PWD
    "AGENTBUS_TOOL_RUN",  # the run's marker (a random id), how escaped processes are found
}


def only_child_variables(env_output: str, *, also: frozenset[str] = frozenset()) -> None:
    env = dict(line.split("=", 1) for line in env_output.splitlines() if "=" in line)
    assert not env.keys() & {"AGENTBUS_TEST_SECRET", *CREDENTIALS}, sorted(env)
    assert env.get("AGENTBUS_TEST_PASSED") == "visible"
    assert env.keys() <= CHILD_VARIABLES | also, env.keys() - CHILD_VARIABLES - also
    assert env.get("HOME") not in (None, os.environ.get("HOME")), "HOME is not a scratch folder"


def credentials_hidden_from_pytest(result: Completed, ws: Workspace) -> None:
    assert result.data["counts"] == {"passed": 1}, result.content


def printenv_empty(result: Completed, ws: Workspace) -> None:
    assert result.exit_code == 1
    assert result.content == ""


def flooded(result: Completed, ws: Workspace) -> None:
    assert result.truncated
    assert len(result.content.encode()) <= 4096


def killed_quickly(result: Completed, ws: Workspace) -> None:
    assert result.timed_out
    assert result.duration_ms < 5000


SLEEPER = "30.7"
"""The runaway cases' children sleep this long: no other process on the machine does."""


def children_dead(result: Completed, ws: Workspace) -> None:
    """No child of the call is left (looked for by command line: in the sandbox's PID
    namespace the pids the command printed are not the machine's)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        alive = _sleepers()
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes {alive} (sleep {SLEEPER}) outlived the call")


def exited_and_children_dead(result: Completed, ws: Workspace) -> None:
    """The command itself exited: its call ends then, not at the timeout."""
    assert not result.timed_out, "a background child held the call until the timeout"
    children_dead(result, ws)


def _sleepers() -> list[int]:
    """Running processes whose command line is ``sleep SLEEPER``."""
    return _processes_running(b"sleep\0" + SLEEPER.encode() + b"\0")


def _processes_running(command_line_part: bytes) -> list[int]:
    """Running (not zombie) processes whose command line holds ``command_line_part``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if command_line_part not in cmdline.read():
                    continue
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                if stat.read().split(")")[-1].split()[0] != "Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def ended_and_executor_answers(result: Completed, ws: Workspace) -> None:
    """The call ended (the bomb hit its process limit: "Cannot fork"; or, with no limit
    that binds, the deadline) and no process of it is left; the next cases talk to the
    same executor and machine."""
    assert result.timed_out or "Cannot fork" in result.content
    deadline = time.monotonic() + 3
    while (left := _processes_running(b"bomb()")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the bomb outlived the call: {left}"


def refused_the_allocation(result: Completed, ws: Workspace) -> None:
    assert result.exit_code != 0
    assert "allocated" not in result.content
    assert "MemoryError" in result.content


def hook_not_run(result: Completed, ws: Workspace) -> None:
    assert not (ws.outside / "fsmonitor-ran").exists()
    assert "a.txt" in result.content


# -- sandbox: CPU time (issue 13 item 1, sandbox part) ----------------------------------


def stopped_by_cpu_time(result: Completed, ws: Workspace) -> None:
    """RLIMIT_CPU ended the loop (SIGXCPU; bubblewrap reports a signal as 128 + its number)
    long before the call's deadline."""
    assert not result.timed_out, "the loop ran until the deadline: no CPU time limit"
    assert result.exit_code in (-signal.SIGXCPU, 128 + signal.SIGXCPU), result.exit_code


# -- end of the sandbox part ---------------------------------------------------------


SH = {"commands": ["sh", "echo", "sleep"], "shell": True}
"""sh is a shell: allowed only with shell = true, each call approved (``Case.approve``)."""

CASES: list[Case] = [
    # path traversal
    Case("dotdot-read", "traversal", "fs.read", {"path": "../outside/secret.txt"}, "forbidden"),
    Case(
        "dotdot-nested",
        "traversal",
        "fs.read",
        {"path": "sub/../../outside/secret.txt"},
        "forbidden",
    ),
    Case(
        "dotdot-write",
        "traversal",
        "fs.write",
        {"path": "../outside/new.txt", "content": "x"},
        "forbidden",
    ),
    Case(
        "dotdot-edit",
        "traversal",
        "fs.edit",
        {"path": "../outside/secret.txt", "search": "TOP", "replace": "x"},
        "forbidden",
    ),
    Case("dotdot-list", "traversal", "fs.list", {"path": ".."}, "forbidden"),
    Case("dotdot-grep", "traversal", "fs.grep", {"pattern": "TOP", "path": ".."}, "forbidden"),
    Case("dotdot-glob-pattern", "traversal", "fs.glob", {"pattern": "../outside/*"}, "forbidden"),
    # absolute paths
    Case("abs-read-outside", "absolute", "fs.read", {"path": "{outside}/secret.txt"}, "forbidden"),
    Case("abs-read-etc", "absolute", "fs.read", {"path": "/etc/passwd"}, "forbidden"),
    Case(
        "abs-write",
        "absolute",
        "fs.write",
        {"path": "{outside}/new.txt", "content": "x"},
        "forbidden",
    ),
    Case("abs-glob-pattern", "absolute", "fs.glob", {"pattern": "/etc/*"}, "forbidden"),
    Case(
        "abs-cwd",
        "absolute",
        "shell.exec",
        {"argv": ["echo", "hi"], "cwd": "{outside}"},
        "forbidden",
    ),
    # symlinks
    Case("symlink-read", "symlink", "fs.read", {"path": "link_out"}, "forbidden", setup=link_file),
    Case(
        "symlink-write",
        "symlink",
        "fs.write",
        {"path": "link_out", "content": "x"},
        "forbidden",
        setup=link_file,
    ),
    Case(
        "symlink-edit",
        "symlink",
        "fs.edit",
        {"path": "link_out", "search": "TOP", "replace": "x"},
        "forbidden",
        setup=link_file,
    ),
    Case(
        "symlink-dir-write",
        "symlink",
        "fs.write",
        {"path": "linkdir/new.txt", "content": "x"},
        "forbidden",
        setup=link_dir,
    ),
    Case(
        "symlink-dir-list", "symlink", "fs.list", {"path": "linkdir"}, "forbidden", setup=link_dir
    ),
    Case(
        "symlink-dangling-create",
        "symlink",
        "fs.write",
        {"path": "dangling", "content": "x"},
        "forbidden",
        setup=dangling,
    ),
    Case(
        "symlink-glob-skips",
        "symlink",
        "fs.glob",
        {"pattern": "**/*"},
        "contained",
        check=no_secret_files,
        setup=link_dir,
    ),
    Case(
        "symlink-grep-skips",
        "symlink",
        "fs.grep",
        {"pattern": "TOPSECRET"},
        "contained",
        check=lambda r, ws: None,
        setup=link_dir,
    ),
    Case(
        "symlink-cwd",
        "symlink",
        "shell.exec",
        {"argv": ["echo"], "cwd": "linkdir"},
        "forbidden",
        setup=link_dir,
    ),
    # hard links
    Case(
        "hardlink-read", "hard link", "fs.read", {"path": "hard.txt"}, "forbidden", setup=hard_link
    ),
    Case(
        "hardlink-write",
        "hard link",
        "fs.write",
        {"path": "hard.txt", "content": "x"},
        "forbidden",
        setup=hard_link,
    ),
    Case(
        "hardlink-edit",
        "hard link",
        "fs.edit",
        {"path": "hard.txt", "search": "TOP", "replace": "x"},
        "forbidden",
        setup=hard_link,
    ),
    Case(
        "hardlink-grep-skips",
        "hard link",
        "fs.grep",
        {"pattern": "TOPSECRET"},
        "contained",
        check=lambda r, ws: None,
        setup=hard_link,
    ),
    # NUL and odd unicode
    Case(
        "nul-read",
        "odd names",
        "fs.read",
        {"path": "file.txt\x00../../outside/secret.txt"},
        "forbidden",
    ),
    Case("nul-write", "odd names", "fs.write", {"path": "a\x00b", "content": "x"}, "forbidden"),
    Case("nul-argv", "odd names", "shell.exec", {"argv": ["echo", "a\x00b"]}, "forbidden"),
    Case(
        "fullwidth-dots",
        "odd names",
        "fs.read",
        {"path": "\uff0e\uff0e/outside/secret.txt"},
        "not_found",
    ),
    Case(
        "division-slash",
        "odd names",
        "fs.read",
        {"path": "..\u2215outside\u2215secret.txt"},
        "not_found",
    ),
    Case("overlong-path", "odd names", "fs.read", {"path": "a/" * 3000}, "forbidden"),
    # shell metacharacters in argv: plain text, no shell
    Case(
        "argv-semicolon",
        "metacharacters",
        "shell.exec",
        {"argv": ["echo", "; touch {outside}/pwned"]},
        "contained",
        check=literal_output("; touch {outside}/pwned"),
    ),
    Case(
        "argv-subshell",
        "metacharacters",
        "shell.exec",
        {"argv": ["echo", "$(touch {outside}/pwned)"]},
        "contained",
        check=literal_output("$(touch {outside}/pwned)"),
    ),
    Case(
        "argv-backticks-and",
        "metacharacters",
        "shell.exec",
        {"argv": ["echo", "`id`", "&&", "rm", "-rf", "x"]},
        "contained",
        check=literal_output("`id` && rm -rf x"),
    ),
    Case(
        "argv-pipe-redirect",
        "metacharacters",
        "shell.exec",
        {"argv": ["echo", "x|tee a > {outside}/pwned"]},
        "contained",
        check=literal_output("x|tee a > {outside}/pwned"),
    ),
    # commands not on the allow-list
    Case("cmd-rm", "allow-list", "shell.exec", {"argv": ["rm", "-rf", "{outside}"]}, "forbidden"),
    Case(
        "cmd-sh",
        "allow-list",
        "shell.exec",
        {"argv": ["sh", "-c", "touch {outside}/pwned"]},
        "forbidden",
    ),
    Case(
        "cmd-abs-sh",
        "allow-list",
        "shell.exec",
        {"argv": ["/bin/sh", "-c", "touch {outside}/pwned"]},
        "forbidden",
    ),
    Case(
        "cmd-python",
        "allow-list",
        "shell.exec",
        {"argv": ["python3", "-c", "open('{outside}/pwned','w')"]},
        "forbidden",
    ),
    Case(
        "cmd-workspace-script",
        "allow-list",
        "shell.exec",
        {"argv": ["./evil.sh"]},
        "forbidden",
        setup=evil_script,
    ),
    Case(
        "cmd-shell-string",
        "allow-list",
        "shell.exec",
        {"command": "touch {outside}/pwned"},
        "forbidden",
    ),
    Case(
        "cmd-path-arg-abs",
        "allow-list",
        "shell.exec",
        {"argv": ["cat", "{outside}/secret.txt"]},
        "forbidden",
    ),
    Case(
        "cmd-path-arg-dotdot",
        "allow-list",
        "shell.exec",
        {"argv": ["cat", "../outside/secret.txt"]},
        "forbidden",
    ),
    Case(
        "cmd-path-arg-option",
        "allow-list",
        "shell.exec",
        {"argv": ["ls", "--hide={outside}/x"]},
        "forbidden",
    ),
    Case(
        "tool-not-allowed",
        "allow-list",
        "fs.write",
        {"path": "x.txt", "content": "x"},
        "forbidden",
        policy={"tools": ["fs.read"]},
    ),
    # environment exfiltration
    Case("env-dump", "environment", "shell.exec", {"argv": ["env"]}, "forbidden"),  # a runner
    Case(
        "env-printenv",
        "environment",
        "shell.exec",
        {"argv": ["printenv", "AGENTBUS_TEST_SECRET"]},
        "contained",
        check=printenv_empty,
    ),
    Case(
        "env-printenv-bus-password",
        "environment",
        "shell.exec",
        {"argv": ["printenv", "AGENTBUS_NATS_PASSWORD"]},
        "contained",
        check=printenv_empty,
    ),
    Case(
        "env-git-filter",
        "environment",
        "git.commit",
        {"repo": "repo", "message": "dump"},
        "forbidden",  # a repository defining a filter is refused before git could run it
        setup=env_printing_filter,
    ),
    Case(
        "env-python-test",
        "environment",
        "python.test",
        {"path": "proj"},
        "contained",
        check=credentials_hidden_from_pytest,
        setup=env_asserting_tests,
    ),
    # SSRF
    Case("ssrf-direct", "ssrf", "http.fetch", {"url": "{internal}/admin"}, "forbidden"),
    Case(
        "ssrf-redirect",
        "ssrf",
        "http.fetch",
        {"url": "{web}/to-internal"},
        "forbidden",
        setup=redirects,
    ),
    Case(
        "ssrf-redirect-metadata",
        "ssrf",
        "http.fetch",
        {"url": "{web}/to-metadata"},
        "forbidden",
        setup=redirects,
    ),
    Case(
        "ssrf-redirect-file",
        "ssrf",
        "http.fetch",
        {"url": "{web}/to-file"},
        "forbidden",
        setup=redirects,
    ),
    Case(
        "ssrf-redirect-localhost",
        "ssrf",
        "http.fetch",
        {"url": "{web}/to-localhost"},
        "forbidden",
        setup=redirects,
    ),
    Case(
        "ssrf-localhost-name",
        "ssrf",
        "http.fetch",
        {"url": "http://localhost:{internal_port}/"},
        "forbidden",
    ),
    Case(
        "ssrf-ipv6-loopback",
        "ssrf",
        "http.fetch",
        {"url": "http://[::1]:{internal_port}/"},
        "forbidden",
    ),
    Case(
        "ssrf-decimal-ip",
        "ssrf",
        "http.fetch",
        {"url": "http://2130706433:{internal_port}/"},
        "forbidden",
    ),
    Case(
        "ssrf-hex-ip",
        "ssrf",
        "http.fetch",
        {"url": "http://0x7f000001:{internal_port}/"},
        "forbidden",
    ),
    Case(
        "ssrf-metadata",
        "ssrf",
        "http.fetch",
        {"url": "http://169.254.169.254/latest/"},
        "forbidden",
    ),
    Case(
        "ssrf-file-scheme",
        "ssrf",
        "http.fetch",
        {"url": "file://{outside}/secret.txt"},
        "forbidden",
    ),
    Case(
        "ssrf-credentials",
        "ssrf",
        "http.fetch",
        {"url": "http://user:pw@127.0.0.1:{internal_port}/"},
        "forbidden",
    ),
    Case(
        "ssrf-redirect-loop",
        "ssrf",
        "http.fetch",
        {"url": "{web}/loop"},
        "invalid",
        setup=redirects,
    ),
    # output flooding
    Case(
        "flood-yes",
        "flooding",
        "shell.exec",
        {"argv": ["yes"], "timeout": 1},
        "contained",
        check=flooded,
    ),
    Case(
        "flood-http",
        "flooding",
        "http.fetch",
        {"url": "{web}/big"},
        "contained",
        check=flooded,
        setup=redirects,
    ),
    Case(
        "flood-read",
        "flooding",
        "fs.read",
        {"path": "big.txt"},
        "contained",
        check=flooded,
        setup=big_file,
    ),
    # runaway and forking processes
    Case(
        "runaway-sleep",
        "runaway",
        "shell.exec",
        {"argv": ["sleep", "30"], "timeout": 0.5},
        "contained",
        check=killed_quickly,
    ),
    Case(
        "fork-background",
        "runaway",
        "shell.exec",
        {"argv": ["sh", "-c", f"(sleep {SLEEPER}; touch {{outside}}/late) & echo $!"]},
        "contained",
        check=exited_and_children_dead,
        policy=SH,
        approve=True,
    ),
    Case(
        "fork-many-timeout",
        "runaway",
        "shell.exec",
        {
            "argv": ["sh", "-c", f"for i in 1 2 3; do sleep {SLEEPER} & echo $!; done; wait"],
            "timeout": 1,
        },
        "contained",
        check=children_dead,
        policy=SH,
        approve=True,
    ),
    Case(
        "setsid-escape",
        "runaway",
        "shell.exec",
        {"argv": ["sh", "-c", f"setsid sleep {SLEEPER} & echo $!"]},
        "contained",
        check=exited_and_children_dead,
        policy=SH,
        approve=True,
    ),
    Case(
        "double-fork-setsid",
        "runaway",
        "shell.exec",
        {
            "argv": [
                "sh",
                "-c",
                f"(setsid sh -c 'sleep {SLEEPER}; touch {{outside}}/late' & echo $!)",
            ]
        },
        "contained",
        check=exited_and_children_dead,
        policy=SH,
        approve=True,
    ),
    # commands that run other commands are shell strings in all but name (issue 13)
    *(
        Case(
            f"runner-{name}",
            "shell equivalents",
            "shell.exec",
            {"argv": argv},
            "forbidden",
            policy={"commands": [argv[0]]},
        )
        for name, argv in (
            ("env", ["env", "sh", "-c", "touch {outside}/pwned"]),
            ("env-path", ["/usr/bin/env", "true"]),
            ("setsid", ["setsid", "-f", "env", "-i", "sleep", "30"]),
            ("git-alias", ["git", "-c", "alias.x=!touch {outside}/pwned", "x"]),
            ("make", ["make", "-f", "Makefile"]),
            ("python-c", ["python3.11", "-c", "open('{outside}/pwned', 'w')"]),
            ("find-exec", ["find", ".", "-exec", "touch", "pwned", ";"]),
            ("xargs", ["xargs", "touch"]),
            ("awk", ["awk", 'BEGIN { system("touch pwned") }']),
            ("nohup", ["nohup", "sleep", "30"]),
        )
    ),
    # a path attached to a short option is a path too
    *(
        Case(
            f"opt-attached-{name}",
            "options",
            "shell.exec",
            {"argv": argv},
            "forbidden",
            policy={"commands": [argv[0]]},
        )
        for name, argv in (
            ("cp-t", ["cp", "-t{outside}", "file.txt"]),
            ("sort-o", ["sort", "-o{outside}/x", "file.txt"]),
            ("sort-o-dotdot", ["sort", "-o../outside/x", "file.txt"]),
        )
    ),
    # resource limits: contained and gone when the call ends (the sandbox, rlimits, cgroup)
    Case(
        "limit-fork-bomb",
        "resource limits",
        "shell.exec",
        {"argv": ["sh", "-c", "bomb() { bomb | bomb & }; bomb; wait"], "timeout": 2},
        "contained",
        check=ended_and_executor_answers,
        policy={**SH, "max_processes": 64},
        approve=True,
    ),
    Case(
        "limit-memory-hog",
        "resource limits",
        "shell.exec",
        {"argv": ["python3", "-c", "b = bytearray(4 << 30); print('allocated')"]},
        "contained",
        check=refused_the_allocation,
        policy={"commands": ["python3"], "shell": True, "max_memory_mb": 1024},
        approve=True,
    ),
    Case(
        "limit-setsid-env-i",
        "resource limits",
        "shell.exec",
        {"argv": ["sh", "-c", f"setsid -f env -i sleep {SLEEPER}; echo started"]},
        "contained",
        check=exited_and_children_dead,
        policy={**SH, "commands": ["sh"]},
        approve=True,
        needs_sandbox=True,
    ),
    # -- sandbox: CPU time (issue 13 item 1, sandbox part)
    Case(
        "limit-cpu-time",
        "resource limits",
        "shell.exec",
        {"argv": ["sh", "-c", "while :; do :; done"]},
        "contained",
        check=stopped_by_cpu_time,
        policy={**SH, "commands": ["sh"], "max_cpu_seconds": 1, "timeout": 8.0},
        approve=True,
    ),
    # -- end of the sandbox part
    # oversized arguments
    Case(
        "oversized-content",
        "oversized",
        "fs.write",
        {"path": "big.txt", "content": "x" * 70_000},
        "payload_too_large",
        policy={"max_argument_bytes": 65536},
    ),
    Case(
        "oversized-argv", "oversized", "shell.exec", {"argv": ["echo"] * 1001}, "schema_violation"
    ),
    Case("oversized-pattern", "oversized", "fs.grep", {"pattern": "a" * 5000}, "schema_violation"),
    # unknown tools
    Case("unknown-tool", "unknown", "fs.delete", {"path": "file.txt"}, "not_found"),
    Case("unknown-dunder", "unknown", "__import__", {}, "not_found"),
    Case("unknown-mcp", "unknown", "mcp.nothere.tool", {}, "not_found"),
    # schema violations
    Case("schema-type", "schema", "fs.read", {"path": 5}, "schema_violation"),
    Case(
        "schema-extra", "schema", "fs.read", {"path": "file.txt", "mode": "rw"}, "schema_violation"
    ),
    Case(
        "schema-zero-line",
        "schema",
        "fs.read",
        {"path": "file.txt", "start_line": 0},
        "schema_violation",
    ),
    Case("schema-empty-argv", "schema", "shell.exec", {"argv": []}, "schema_violation"),
    Case(
        "schema-both-forms",
        "schema",
        "shell.exec",
        {"argv": ["echo"], "command": "echo"},
        "schema_violation",
    ),
    Case(
        "schema-method",
        "schema",
        "http.fetch",
        {"url": "{web}/", "method": "TRACE"},
        "schema_violation",
    ),
    # repositories that would run code, identity
    Case(
        "git-fsmonitor",
        "git",
        "git.status",
        {"repo": "repo"},
        "contained",
        check=hook_not_run,
        setup=fsmonitor_repo,
    ),
    Case("git-textconv", "git", "git.diff", {"repo": "repo"}, "forbidden", setup=textconv_repo),
    Case("git-repo-outside", "git", "git.status", {"repo": "{outside}"}, "forbidden"),
    # a repository's config and layout that would make git run or reach elsewhere (issue 13)
    *(
        Case(f"git-filter-{tool}", "git config", f"git.{tool}", arguments, "forbidden", setup=setup)
        for tool, arguments in (
            ("status", {"repo": "repo"}),
            ("diff", {"repo": "repo"}),
            ("commit", {"repo": "repo", "message": "m"}),
        )
        for setup in (pwning_filter_repo,)
    ),
    Case(
        "git-filter-process",
        "git config",
        "git.status",
        {"repo": "repo"},
        "forbidden",
        setup=pwning_process_filter_repo,
    ),
    Case(
        "git-filter-included",
        "git config",
        "git.commit",
        {"repo": "repo", "message": "m"},
        "forbidden",
        setup=included_filter_repo,
    ),
    Case(
        "git-filter-worktree-config",
        "git config",
        "git.status",
        {"repo": "repo"},
        "forbidden",
        setup=worktree_config_filter_repo,
    ),
    Case(
        "git-filter-after-a-long-config",
        "git config",
        "git.status",
        {"repo": "repo"},
        "forbidden",
        setup=long_config_filter_repo,
    ),
    Case(
        "git-merge-driver",
        "git config",
        "git.status",
        {"repo": "repo"},
        "forbidden",
        setup=merge_driver_repo,
    ),
    Case(
        "git-diff-command",
        "git config",
        "git.diff",
        {"repo": "repo"},
        "forbidden",
        setup=diff_command_repo,
    ),
    *(
        Case(
            f"git-gitdir-outside-{tool}",
            "git layout",
            f"git.{tool}",
            arguments,
            "forbidden",
            setup=gitdir_outside_repo,
        )
        for tool, arguments in (
            ("status", {"repo": "repo"}),
            ("diff", {"repo": "repo"}),
            ("commit", {"repo": "repo", "message": "moved"}),
        )
    ),
    Case(
        "git-worktree-outside",
        "git layout",
        "git.status",
        {"repo": "repo"},
        "forbidden",
        setup=worktree_outside_repo,
    ),
    Case(
        "git-commondir-outside",
        "git layout",
        "git.commit",
        {"repo": "repo", "message": "m"},
        "forbidden",
        setup=commondir_outside_repo,
    ),
    Case(
        "git-not-the-top",
        "git layout",
        "git.status",
        {"repo": "repo/sub"},
        "not_found",
        setup=plain_repo,
    ),
    # the fs tools write nothing inside .git (its config and hooks decide what git runs)
    *(
        Case(
            f"fs-write-git-{name}",
            "git internals",
            "fs.write",
            {"path": path, "content": content, "create_dirs": True},
            "forbidden",
            setup=plain_repo,
        )
        for name, path, content in (
            ("config", "repo/.git/config", '[filter "x"]\n\tclean = touch {outside}/pwned\n'),
            ("hook", "repo/.git/hooks/pre-commit", "#!/bin/sh\ntouch {outside}/pwned\n"),
            ("attributes", "repo/.git/info/attributes", "* filter=x\n"),
            ("pointer", "other/.git", "gitdir: {outside}/victim/.git\n"),
            ("upper-case", "repo/.GIT/config", "[core]\n"),
            ("dotdot", "repo/sub/../.git/config", "[core]\n"),
        )
    ),
    Case(
        "fs-edit-git-config",
        "git internals",
        "fs.edit",
        {"path": "repo/.git/config", "search": "[core]", "replace": "[core]\n\tfsmonitor = true\n"},
        "forbidden",
        setup=plain_repo,
    ),
    # names that are not UTF-8 answer everyone, escaped; patterns that would explode are tamed
    Case(
        "fs-list-non-utf8",
        "names",
        "fs.list",
        {"path": "."},
        "contained",
        check=bad_name_shown,
        setup=non_utf8_name,
    ),
    Case(
        "fs-glob-non-utf8",
        "names",
        "fs.glob",
        {"pattern": "*"},
        "contained",
        check=bad_name_shown,
        setup=non_utf8_name,
    ),
    Case(
        "fs-grep-non-utf8",
        "names",
        "fs.grep",
        {"pattern": "needle"},
        "contained",
        check=bad_name_shown,
        setup=non_utf8_name,
    ),
    Case(
        "fs-glob-stacked-stars",
        "denial of service",
        "fs.glob",
        {"pattern": "**/" * 10 + "x"},
        "contained",
        check=deep_x_found,
        setup=deep_tree,
    ),
    Case(
        "fs-write-git-via-link",
        "git internals",
        "fs.write",
        {"path": "gitlink/config", "content": "[core]\n"},
        "forbidden",
        setup=linked_git_folder,
    ),
    Case(
        "identity-spoof", "identity", "fs.read", {"path": "file.txt"}, "forbidden", caller="admin"
    ),
]


# -- paths: races, escaped names, read roots (issue 13 items 3-4, paths part) ------------
# Race cases: a second process swaps ws/d (a folder) and ws/link (a link to outside/canary,
# whose files hold the secret) while one call walks the tree; the check stops it.

RACE_FILES = 60
RACE_MARKER = "outside-only-c4a1"
_swappers: dict[Path, Swapper] = {}


def racing_tree(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    canary = ws.outside / "canary"
    (ws.ws / "d" / "sub").mkdir(parents=True)
    (canary / "sub").mkdir(parents=True)
    for index in range(RACE_FILES):
        (ws.ws / "d" / "sub" / f"f{index}.txt").write_text("needle\n", encoding="utf-8")
        (canary / "sub" / f"f{index}.txt").write_text(f"needle {SECRET}\n", encoding="utf-8")
    (canary / RACE_MARKER).write_text(SECRET, encoding="utf-8")
    (ws.ws / "link").symlink_to(canary, target_is_directory=True)
    _swappers[ws.base] = Swapper(ws.ws / "d", ws.ws / "link", lifetime=30.0)


def raced_and_stayed_inside(result: Completed, ws: Workspace) -> None:
    swapper = _swappers.pop(ws.base)
    running = swapper.running()
    swapper.stop()
    assert running, "the swapper had stopped before the call ended: nothing raced"
    assert RACE_MARKER not in result.content + str(result.data)


def escaped_name_read(result: Completed, ws: Workspace) -> None:
    assert result.content == "needle\n"
    assert result.data["path"] == str(ws.ws / "bad\\xffname.txt")


def escaped_name_changed(expected: bytes) -> Check:
    def check(result: Completed, ws: Workspace) -> None:
        with open(os.path.join(os.fsencode(ws.ws), BAD_NAME), "rb") as file:
            assert file.read() == expected
        assert not (ws.ws / "bad\\xffname.txt").exists(), "a second file, spelt with \\"

    return check


def literal_and_escaped_names(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    non_utf8_name(ws, web, internal)
    (ws.ws / "bad\\xffname.txt").write_text("literal\n", encoding="utf-8")


def escaped_name_outside(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    with open(os.path.join(os.fsencode(ws.outside), b"se\xffcret.txt"), "wb") as out:
        out.write(SECRET.encode() + b"\n")


SHARED = {"read_roots": ["{outside}/shared"]}
"""A read root outside the workspace (so the snapshot proves it is never written)."""


def shared_docs(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.outside / "shared").mkdir()
    (ws.outside / "shared" / "doc.txt").write_text("shared doc\n", encoding="utf-8")
    (ws.ws / "into-ro.txt").symlink_to(ws.outside / "shared" / "doc.txt")
    (ws.ws / "ro-dir").symlink_to(ws.outside / "shared", target_is_directory=True)


def shared_repo(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    shared_docs(ws, web, internal)
    repo = ws.outside / "shared" / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    (repo / "a.txt").write_text("b\n", encoding="utf-8")


def vendored(ws: Workspace, web: FakeWeb, internal: FakeWeb) -> None:
    (ws.ws / "vendor").mkdir()
    (ws.ws / "vendor" / "lib.txt").write_text("vendored\n", encoding="utf-8")


def content_is(expected: str) -> Check:
    def check(result: Completed, ws: Workspace) -> None:
        assert result.content == expected

    return check


def status_shows_the_change(result: Completed, ws: Workspace) -> None:
    assert " M a.txt" in result.content, result.content


CASES.extend(
    [
        *(
            Case(
                f"race-{name}",
                "races",
                tool,
                arguments,
                "contained",
                check=raced_and_stayed_inside,
                setup=racing_tree,
                policy={"timeout": 20.0},
            )
            for name, tool, arguments in (
                ("grep-tree", "fs.grep", {"pattern": "needle", "max_matches": 10000}),
                ("glob-tree", "fs.glob", {"pattern": "**/*"}),
                ("glob-deep", "fs.glob", {"pattern": "**/sub/*.txt"}),
                ("grep-some", "fs.grep", {"pattern": "needle", "glob": "f1*.txt"}),
            )
        ),
        Case(
            "fs-read-escaped-name",
            "names",
            "fs.read",
            {"path": "bad\\xffname.txt"},
            "contained",
            check=escaped_name_read,
            setup=non_utf8_name,
        ),
        Case(
            "fs-edit-escaped-name",
            "names",
            "fs.edit",
            {"path": "bad\\xffname.txt", "search": "needle", "replace": "found"},
            "contained",
            check=escaped_name_changed(b"found\n"),
            setup=non_utf8_name,
        ),
        Case(
            "fs-write-escaped-name",
            "names",
            "fs.write",
            {"path": "bad\\xffname.txt", "content": "written\n"},
            "contained",
            check=escaped_name_changed(b"written\n"),
            setup=non_utf8_name,
        ),
        Case(
            "fs-literal-name-first",
            "names",
            "fs.read",
            {"path": "bad\\xffname.txt"},
            "contained",
            check=content_is("literal\n"),
            setup=literal_and_escaped_names,
        ),
        Case(
            "fs-escaped-name-outside",
            "names",
            "fs.read",
            {"path": "../outside/se\\xffcret.txt"},
            "forbidden",
            setup=escaped_name_outside,
        ),
        Case(
            "ro-read",
            "read roots",
            "fs.read",
            {"path": "{outside}/shared/doc.txt"},
            "contained",
            check=content_is("shared doc\n"),
            setup=shared_docs,
            policy=SHARED,
        ),
        *(
            Case(
                f"ro-{name}",
                "read roots",
                tool,
                arguments,
                "forbidden",
                setup=shared_docs,
                policy=SHARED,
            )
            for name, tool, arguments in (
                ("write-new", "fs.write", {"path": "{outside}/shared/new.txt", "content": "x"}),
                ("write-over", "fs.write", {"path": "{outside}/shared/doc.txt", "content": "x"}),
                (
                    "edit",
                    "fs.edit",
                    {"path": "{outside}/shared/doc.txt", "search": "doc", "replace": "x"},
                ),
                (
                    "mkdir",
                    "fs.write",
                    {"path": "{outside}/shared/new/x.txt", "content": "x", "create_dirs": True},
                ),
                ("write-via-link", "fs.write", {"path": "into-ro.txt", "content": "x"}),
                (
                    "edit-via-link",
                    "fs.edit",
                    {"path": "into-ro.txt", "search": "doc", "replace": "x"},
                ),
                (
                    "mkdir-via-folder-link",
                    "fs.write",
                    {"path": "ro-dir/n/x.txt", "content": "x", "create_dirs": True},
                ),
                ("dotdot", "fs.write", {"path": "../outside/shared/x.txt", "content": "x"}),
                ("secret-beside", "fs.read", {"path": "{outside}/secret.txt"}),
                ("shell-cwd", "shell.exec", {"argv": ["ls"], "cwd": "{outside}/shared"}),
            )
        ),
        Case(
            "ro-git-status-writes-nothing",
            "read roots",
            "git.status",
            {"repo": "{outside}/shared/repo"},
            "contained",
            check=status_shows_the_change,
            setup=shared_repo,
            policy=SHARED,
        ),
        Case(
            "ro-git-commit",
            "read roots",
            "git.commit",
            {"repo": "{outside}/shared/repo", "message": "m"},
            "forbidden",
            setup=shared_repo,
            policy=SHARED,
        ),
        Case(
            "ro-nested-in-writable-root",
            "read roots",
            "fs.write",
            {"path": "vendor/lib.txt", "content": "patched\n"},
            "forbidden",
            setup=vendored,
            policy={"read_roots": ["{ws}/vendor"]},
        ),
    ]
)
# -- end of the paths part ---------------------------------------------------------------


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def test_the_corpus_is_big_and_ids_are_unique() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_attack_is_refused_or_contained(
    case: Case,
    workspace: Workspace,
    web: FakeWeb,
    internal: FakeWeb,
    start_executor: Any,
    bus_as: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case.needs_sandbox and sandbox().bwrap is None:
        pytest.skip(f"needs the bubblewrap sandbox: {sandbox().reason}")
    monkeypatch.setenv("AGENTBUS_TEST_SECRET", SECRET)
    monkeypatch.setenv("AGENTBUS_TEST_PASSED", "visible")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    policy: dict[str, Any] = {
        "roots": [str(workspace.ws)],
        "tools": ["*"],
        "commands": ["echo", "cat", "ls", "env", "printenv", "true", "yes", "sleep"],
        "hosts": [f"127.0.0.1:{web.port}"],
        "env": ["AGENTBUS_TEST_PASSED"],
        "medium": "run",
        "max_output": 4096,
        "timeout": 5.0,
    }
    placed = {"ws": str(workspace.ws), "outside": str(workspace.outside)}
    policy.update(fill(case.policy, placed))  # read roots name these folders
    admin = {**policy, "commands": ["sh", "rm"], "shell": True}
    await start_executor({"policy": {"agent": policy, "admin": admin}})
    if case.setup is not None:
        case.setup(workspace, web, internal)
    before = workspace.snapshot()
    names = {
        "ws": str(workspace.ws),
        "outside": str(workspace.outside),
        "web": web.base,
        "internal": internal.base,
        "internal_port": str(internal.port),
    }
    bus = await bus_as("agent")
    request = ExecuteRequest(
        tool=case.tool, arguments=fill(case.arguments, names), caller=case.caller
    )
    if case.approve:
        request = request.model_copy(update={"idempotency_key": case.id})
        pending = (await bus.request(TOOLS_EXECUTE, request, timeout=20)).result
        assert isinstance(pending, ApprovalRequired), pending
        approver = await bus_as("approver")
        decision = DecideRequest(
            approval_id=pending.approval_id, decision="approve", decided_by="t"
        )
        await approver.request(APPROVALS_DECIDE, decision)
    if case.expect == "contained":
        reply = await bus.request(TOOLS_EXECUTE, request, timeout=20)
        result = reply.result
        assert isinstance(result, Completed), result
        assert case.check is not None
        case.check(result, workspace)
        shown = result.content + str(result.data)
    else:
        with pytest.raises(RemoteError) as refused:
            await bus.request(TOOLS_EXECUTE, request, timeout=20)
        assert refused.value.code == case.expect, refused.value.reply.message
        shown = refused.value.reply.model_dump_json()
    await asyncio.sleep(0.05)  # anything a contained process might still do
    assert SECRET not in shown
    assert workspace.snapshot() == before, "something outside the workspace changed"
    assert internal.hits == [], "a request reached the internal server"
    assert not (workspace.outside / "pwned").exists()
