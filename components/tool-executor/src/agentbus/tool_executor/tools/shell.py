"""``shell.exec``: run a command from the allow-list, or (if the policy allows) a shell string.

An argv list never meets a shell: metacharacters in it are plain text. ``argv[0]``
must be listed in the policy's ``commands`` (a bare name is looked up on the
policy's ``PATH`` only). Arguments that look like paths (absolute, ``~``, or with
a ``..`` part, also after ``--opt=`` and attached to a short option: ``-t/x``)
must resolve inside the roots. That is a guard against obvious escapes, not a
sandbox. Shell strings are never checked against the allow-list (a shell cannot be
constrained), so they need ``shell = true`` and are always high risk: a human
approves each one. A command that runs other commands or code of its arguments'
choosing (:data:`SHELL_EQUIVALENTS`: shells, ``env``, ``setsid``, ``xargs``,
``find -exec``, ``make``, ``git`` aliases, interpreters with ``-c``...) is a shell
string in all but name: it too needs ``shell = true`` and is high risk.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from pydantic import Field, JsonValue, model_validator

from agentbus.interfaces.catalog.tools import Risk
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed
from agentbus.tool_executor.policy import Policy
from agentbus.tool_executor.processes import run_process


class ExecArgs(ToolArgs):
    argv: list[str] | None = Field(
        default=None, min_length=1, max_length=1000, description="Command and arguments."
    )
    command: str | None = Field(
        default=None, min_length=1, max_length=100_000, description="A shell string (high risk)."
    )
    cwd: str = Field(default=".", description="Working folder, inside the roots.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds; capped by policy.")

    @model_validator(mode="after")
    def _one_form(self) -> ExecArgs:
        if (self.argv is None) == (self.command is None):
            raise ValueError("give exactly one of argv (a list) or command (a shell string)")
        return self


SHELL_EQUIVALENTS = re.compile(
    r"(sh|bash|dash|zsh|ksh|mksh|csh|tcsh|fish|busybox|toybox"
    r"|env|setsid|nohup|nice|ionice|timeout|stdbuf|chroot|unshare|nsenter|sudo|su|doas|runuser"
    r"|xargs|parallel|find|make|gmake|git|ssh|watch|flock|script|expect|tclsh|wish"
    r"|python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|deno|bun|php[0-9.]*|lua[0-9.]*"
    r"|awk|gawk|mawk|nawk|sed|vim?|nvim|emacs|less|more|man|pip[0-9.]*|uv|uvx|npm|npx|pnpm|yarn)"
)
"""Commands (by file name) that run other commands or code their arguments choose."""


def shell_equivalent(name: str) -> bool:
    """Whether ``argv[0]`` (a name or a path) is a command runner or an interpreter."""
    return SHELL_EQUIVALENTS.fullmatch(PurePosixPath(name).name) is not None


def _risk(args: ExecArgs) -> Risk:
    if args.command is not None or (args.argv is not None and shell_equivalent(args.argv[0])):
        return Risk.HIGH
    return Risk.MEDIUM


def _looks_like_path(arg: str) -> str | None:
    """The path in ``arg``, if it names one: the argument itself, the value of
    ``--opt=value``, or what follows a short option's letters (``-t/outside``)."""
    value = arg
    if arg.startswith("-") and "=" in arg:
        value = arg.split("=", 1)[1]
    elif arg.startswith("-") and not arg.startswith("--"):
        starts = (arg.find(mark) for mark in ("/", "~", ".."))
        start = min((i for i in starts if i > 0), default=0)
        value = arg[start:] if start else arg
    if value.startswith(("/", "~")) or ".." in Path(value).parts:
        return value
    return None


def _executable(name: str, ctx: ToolContext) -> str:
    if "\x00" in name:
        raise Refused("argv[0] contains a NUL byte")
    if name not in ctx.policy.commands:
        allowed = ", ".join(ctx.policy.commands) or "none"
        raise Refused(f"command {name!r} is not on this caller's allow-list ({allowed})")
    if "/" in name:
        return name
    found = shutil.which(name, path=ctx.policy.path)
    if found is None:
        raise ToolFailed(f"command {name!r} is allowed but not found on {ctx.policy.path}")
    return found


def _precheck(args: ExecArgs, policy: Policy) -> None:
    """Refuse what the policy rules out before anyone is asked to approve it."""
    if args.command is not None and not policy.shell:
        raise Refused("this caller's policy does not allow shell strings; pass argv instead")
    if args.argv is not None and shell_equivalent(args.argv[0]) and not policy.shell:
        raise Refused(
            f"{args.argv[0]!r} runs whatever its arguments say, like a shell string: it needs "
            "shell = true in the caller's policy (and each call a person's approval); the "
            "git.* and python.test tools are the confined way to git and tests"
        )
    if args.argv is not None and args.argv[0] not in policy.commands:
        allowed = ", ".join(policy.commands) or "none"
        raise Refused(f"command {args.argv[0]!r} is not on this caller's allow-list ({allowed})")


@tool("shell.exec", risk=Risk.MEDIUM, risk_of=_risk, precheck=_precheck)
async def exec_(args: ExecArgs, ctx: ToolContext) -> ToolOutcome:
    """Run a command (argv list, no shell) or a shell string in a workspace folder.

    Output (stdout and stderr interleaved) is capped; at the timeout the whole
    process group is killed. Only the policy's environment variables are passed.
    """
    cwd = paths.resolve(args.cwd, ctx.roots)
    if not cwd.is_dir():
        raise ToolFailed(f"{cwd} is not a folder")
    if args.command is not None:
        if not ctx.policy.shell:
            raise Refused("this caller's policy does not allow shell strings; pass argv instead")
        if "\x00" in args.command:
            raise Refused("the command contains a NUL byte")
        argv = ["/bin/sh", "-c", args.command]
    else:
        assert args.argv is not None
        _precheck(args, ctx.policy)  # also when no approval step ran it
        argv = [_executable(args.argv[0], ctx), *args.argv[1:]]
        for arg in args.argv[1:]:
            if "\x00" in arg:
                raise Refused("an argument contains a NUL byte")
            if (value := _looks_like_path(arg)) is not None:
                paths.resolve(value, ctx.roots, cwd=cwd)
    result = await run_process(
        argv,
        cwd=cwd,
        env=ctx.policy.process_env(),
        timeout=ctx.timeout(args.timeout),
        max_output=ctx.policy.max_output,
        confine=ctx.policy.confinement(),
    )
    return ToolOutcome(
        result.output,
        truncated=result.truncated,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        data={
            "argv": list[JsonValue](argv),
            "cwd": str(cwd),
            "duration_s": round(result.duration, 3),
        },
    )


TOOLS = (exec_,)
