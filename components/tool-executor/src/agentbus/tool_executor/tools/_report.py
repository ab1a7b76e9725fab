"""A pytest plugin (loaded with ``-p``) that writes one JSON line per test outcome.

The file is named by ``AGENTBUS_PYTEST_REPORT``; without it the plugin does nothing.
Setup and teardown failures are reported as ``error``; the call phase decides otherwise.
"""

from __future__ import annotations

import json
import os
from typing import Any

REPORT_ENV = "AGENTBUS_PYTEST_REPORT"
_MAX_MESSAGE = 2000


def _write(row: dict[str, Any]) -> None:
    target = os.environ.get(REPORT_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def pytest_runtest_logreport(report: Any) -> None:
    outcome: str | None = None
    if report.when == "call":
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
    elif report.failed:
        outcome = "error"
    elif report.when == "setup" and report.skipped:
        outcome = "skipped"
    if outcome is None:
        return
    message = str(report.longrepr)[-_MAX_MESSAGE:] if report.longrepr else ""
    _write(
        {
            "nodeid": report.nodeid,
            "outcome": outcome,
            "duration": round(report.duration, 4),
            "message": message,
        }
    )


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _write(
            {
                "nodeid": report.nodeid,
                "outcome": "error",
                "duration": 0.0,
                "message": str(report.longrepr)[-_MAX_MESSAGE:],
            }
        )
