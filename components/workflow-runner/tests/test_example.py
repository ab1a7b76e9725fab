"""examples/issue_triage: an event starts the triage workflow, which reads, asks and writes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from runner_helpers import FakeModel, Received, answer, messages, wait_status

from agentbus.framework import Bus

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "issue_triage"
sys.path.insert(0, str(EXAMPLE))
import triage_app  # noqa: E402 - the example folder is put on the path just above


async def test_an_opened_issue_is_triaged_once(
    gateway: Any,
    executor: Any,
    start_runner: Any,
    bus: Bus,
    fake_model: FakeModel,
    workspace: Path,
) -> None:
    shutil.copy(EXAMPLE / "workspace" / "labels.txt", workspace / "labels.txt")

    def brain(received: Received) -> Any:
        assert "bug, feature, question, docs" in str(messages(received)[0]["content"])
        return answer(received, "Bug")

    fake_model.brain = brain
    await start_runner(apps=(triage_app.app,))

    event = triage_app.IssueOpened(number=7, title="  Crash   on start.", body="It crashes.")
    await bus.publish(triage_app.ISSUE_OPENED, event)
    await bus.publish(triage_app.ISSUE_OPENED, event)  # delivered twice: still one run

    run = await wait_status(bus, "issue-7", "finished", "failed")
    assert run.status == "finished", run.error
    assert run.result == {"label": "bug", "note": "triage/7.md"}
    note = (workspace / "triage" / "7.md").read_text(encoding="utf-8")
    assert note == "# #7 Crash on start\n\nlabel: bug\n"
    assert [s.name for s in run.steps] == [
        "normalise",
        "tool:fs.read",
        "model.catalog",
        "model",
        "tool:fs.write",
    ]
    assert len(fake_model.chat_requests()) == 1
