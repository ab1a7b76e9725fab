"""Run a component's tests against a locked environment and compare two runs per test.

Environments: the pins come from the component's own ``requirements.lock``
(``uv pip compile pyproject.toml -o requirements.lock``) or, for a member of a uv
workspace without one, from the workspace's ``uv.lock`` (``uv export --package
<name>``). A run installs them into a fresh target folder with ``uv pip install
--target`` and runs the agent-config ``test_command`` (pytest) with that folder
first on ``PYTHONPATH``, so the tested versions shadow whatever the interpreter
has; a leading ``uv run`` becomes this interpreter's ``-m`` (``uv run`` would sync
an environment of its own). Where packages come from is uv's own configuration
(``UV_INDEX_URL``, ``UV_FIND_LINKS``, ``UV_OFFLINE``, ...), so tests and demos use
a local folder of wheels and production uses PyPI.

The comparison is SWE-bench's PASS_TO_PASS: every test that passed on the old
version must pass on the new one. FAIL_TO_PASS and new tests are reported.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentbus.maintainer.errors import FlowError

LOCK_FILE = "requirements.lock"
OUTPUT_TAIL = 2000


async def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise FlowError(f"`{' '.join(argv)}` did not finish within {timeout:g}s") from None
    return process.returncode or 0, output.decode(errors="replace")[-OUTPUT_TAIL:]


def _uv() -> list[str]:
    """uv from PATH, else the ``uv`` module next to this interpreter."""
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def workspace_root(component_dir: Path) -> Path | None:
    """The uv workspace (a folder with ``uv.lock``) in the component's repository, if any."""
    for folder in component_dir.parents:
        if (folder / "uv.lock").is_file():
            return folder
        if (folder / ".git").exists():  # the repository's root: look no further
            return None
    return None


def lock_file(component_dir: Path) -> Path:
    """Where the component's pins live: its requirements.lock, else its workspace's uv.lock."""
    own = component_dir / LOCK_FILE
    if own.is_file():
        return own
    root = workspace_root(component_dir)
    if root is None:
        raise FlowError(
            f"{component_dir.name} pins nothing: give it a {LOCK_FILE} (uv pip compile "
            "pyproject.toml -o requirements.lock) or make it a member of a uv workspace"
        )
    return root / "uv.lock"


def distribution(component_dir: Path) -> str:
    data = tomllib.loads((component_dir / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["name"])


async def lock(component_dir: Path, package: str, *, timeout: float = 300.0) -> Path:
    """Re-resolve the component's pins after its constraint on ``package`` changed."""
    pins = lock_file(component_dir)
    if pins.name == LOCK_FILE:
        argv = [*_uv(), "pip", "compile", "pyproject.toml", "-o", LOCK_FILE, "--quiet"]
    else:
        argv = [*_uv(), "lock", "--upgrade-package", package, "--quiet"]
    code, output = await _run(argv, pins.parent, dict(os.environ), timeout)
    if code != 0:
        raise FlowError(f"locking failed (`{' '.join(argv[-4:])}`): {output.strip()}")
    return pins


async def requirements(component_dir: Path, scratch: Path, *, timeout: float) -> Path:
    """A requirements file with exactly the component's pinned dependencies."""
    pins = lock_file(component_dir)
    if pins.name == LOCK_FILE:
        return pins
    exported = scratch / "requirements.txt"
    argv = [*_uv(), "export", "--frozen", "--package", distribution(component_dir)]
    argv += ["--no-emit-workspace", "--no-hashes", "--no-dev", "--quiet", "-o", str(exported)]
    code, output = await _run(argv, pins.parent, dict(os.environ), timeout)
    if code != 0:
        raise FlowError(f"exporting the workspace lock failed: {output.strip()}")
    return exported


def command(test_command: list[str]) -> list[str]:
    """The argv to run: ``python`` is this interpreter, ``uv run X`` is ``python -m X``."""
    if test_command[:2] == ["uv", "run"]:
        return [sys.executable, "-m", *test_command[2:]]
    return [sys.executable if part == "python" else part for part in test_command]


async def install_lock(lock_file: Path, target: Path, *, label: str, timeout: float) -> None:
    """Install exactly what ``lock_file`` pins into the folder ``target``."""
    argv = [*_uv(), "pip", "install", "--target", str(target), "-r", str(lock_file)]
    argv += ["--quiet", "--python", sys.executable]
    code, output = await _run(argv, lock_file.parent, dict(os.environ), timeout)
    if code != 0:
        raise FlowError(f"installing the {label} environment failed: {output.strip()}")


@dataclass
class TestRun:
    """Per-test outcomes of one run: ``passed``, ``failed``, ``error`` or ``skipped``."""

    __test__ = False

    label: str
    outcomes: dict[str, str]
    returncode: int
    output: str

    @property
    def passed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o == "passed"}


def parse_junit(path: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    root = ET.parse(path).getroot()  # noqa: S314 - a file our own pytest run wrote
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                break
        outcomes[name] = outcome
    return outcomes


async def run_tests(
    component_dir: Path,
    test_command: list[str],
    label: str,
    *,
    timeout: float = 600.0,
) -> TestRun:
    """Install the component's lock into a fresh folder and run its tests there."""
    if not any("pytest" in part for part in test_command):
        raise FlowError(
            f"test_command {test_command} is not pytest: per-test outcomes need pytest's junit"
        )
    with tempfile.TemporaryDirectory(prefix=f"agentbus-tests-{label}-") as scratch:
        target, report = Path(scratch) / "site", Path(scratch) / "junit.xml"
        env = dict(os.environ)
        pins = await requirements(component_dir, Path(scratch), timeout=timeout)
        await install_lock(pins, target, label=label, timeout=timeout)
        paths = [str(target), str(component_dir / "src"), str(component_dir)]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        argv = [*command(test_command), f"--junitxml={report}", "-p", "no:cacheprovider"]
        code, output = await _run(argv, component_dir, env, timeout)
        if not report.is_file():
            raise FlowError(f"the {label} test run wrote no junit report: {output.strip()}")
        return TestRun(label, parse_junit(report), code, output)


@dataclass
class Matrix:
    """Old vs new outcomes per test, and the PASS_TO_PASS verdict."""

    rows: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def compare(cls, old: TestRun, new: TestRun) -> Matrix:
        names = sorted(set(old.outcomes) | set(new.outcomes))
        return cls(
            {n: (old.outcomes.get(n, "absent"), new.outcomes.get(n, "absent")) for n in names}
        )

    @property
    def pass_to_pass(self) -> list[str]:
        return [n for n, (a, b) in self.rows.items() if a == "passed" and b == "passed"]

    @property
    def broken(self) -> list[str]:
        """Passed on the old version, not on the new: any one blocks promotion."""
        return [n for n, (a, b) in self.rows.items() if a == "passed" and b != "passed"]

    @property
    def fail_to_pass(self) -> list[str]:
        return [
            n for n, (a, b) in self.rows.items() if a not in ("passed", "absent") and b == "passed"
        ]

    @property
    def ok(self) -> bool:
        return (
            bool(self.rows)
            and not self.broken
            and any(b == "passed" for _, b in self.rows.values())
        )

    def as_text(self) -> str:
        width = max((len(n) for n in self.rows), default=4)
        lines = [f"{'test'.ljust(width)}  old     new", f"{'-' * width}  ------  ------"]
        lines += [f"{n.ljust(width)}  {a:<6}  {b}" for n, (a, b) in self.rows.items()]
        lines.append(
            f"PASS_TO_PASS {len(self.pass_to_pass)}, broken {len(self.broken)}, "
            f"FAIL_TO_PASS {len(self.fail_to_pass)}: {'OK' if self.ok else 'FAILED'}"
        )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "tests": {n: {"old": a, "new": b} for n, (a, b) in self.rows.items()},
            "pass_to_pass": len(self.pass_to_pass),
            "broken": self.broken,
            "fail_to_pass": self.fail_to_pass,
            "ok": self.ok,
        }
