"""``python.test``: pytest in a workspace folder, with an outcome for every test.

pytest runs as a child process (same limits as ``shell.exec``: own process
group, timeout, capped output, the policy's environment) with the small plugin
:mod:`agentbus.tool_executor.tools._report` loaded through ``-p``; it writes one
JSON line per test to a file outside the workspace, which is read back here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from pydantic import Field

from agentbus.interfaces.catalog.tools import Risk
from agentbus.tool_executor import paths
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed
from agentbus.tool_executor.processes import run_process
from agentbus.tool_executor.tools._report import REPORT_ENV


class TestArgs(ToolArgs):
    path: str = Field(default=".", description="Folder (or test file) to run pytest in/on.")
    select: list[str] = Field(
        default_factory=list, max_length=200, description="Test files or node ids (relative)."
    )
    keyword: str | None = Field(default=None, max_length=500, description="pytest -k expression.")
    timeout: float | None = Field(default=None, gt=0)


def _node(selector: str, base: Path, roots: tuple[Path, ...]) -> str:
    if selector.startswith("-"):
        raise Refused(f"{selector!r}: selections are test paths or node ids, not options")
    file_part = selector.split("::", 1)[0]
    paths.resolve(file_part, roots, cwd=base)
    return selector


@tool("python.test", risk=Risk.MEDIUM)
async def run_tests(args: TestArgs, ctx: ToolContext) -> ToolOutcome:
    """Run pytest and return each test's outcome (passed, failed, skipped, error)."""
    target = paths.resolve(args.path, ctx.roots)
    cwd = target if target.is_dir() else target.parent
    selected = [_node(s, cwd, ctx.roots) for s in args.select] or [str(target)]
    with tempfile.TemporaryDirectory(prefix="agentbus-pytest-") as tmp:
        report = Path(tmp) / "report.jsonl"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "agentbus.tool_executor.tools._report",
            "--rootdir",
            str(cwd),
        ]
        if args.keyword:
            argv += ["-k", args.keyword]
        env = ctx.policy.process_env() | {REPORT_ENV: str(report), "PYTHONDONTWRITEBYTECODE": "1"}
        result = await run_process(
            [*argv, "--", *selected],
            cwd=cwd,
            env=env,
            timeout=ctx.timeout(args.timeout),
            max_output=ctx.policy.max_output,
            confine=ctx.policy.confinement(Path(tmp), python=True),
        )
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    tests = [json.loads(line) for line in lines]
    if not tests and result.exit_code not in (0, 5) and not result.timed_out:
        raise ToolFailed(f"pytest did not run (exit {result.exit_code}): {result.output[-2000:]}")
    counts: dict[str, int] = {}
    for test in tests:
        counts[test["outcome"]] = counts.get(test["outcome"], 0) + 1
    return ToolOutcome(
        result.output,
        truncated=result.truncated,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        data={"tests": tests, "counts": counts},  # type: ignore[dict-item]
    )


TOOLS = (run_tests,)
