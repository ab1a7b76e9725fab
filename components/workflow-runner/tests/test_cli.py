"""``agentbus run`` and ``agentbus runs`` as a user types them, against running services."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runner_helpers import FakeModel, Received, agentbus, answer, tool_results, wait_status

from agentbus.framework import Bus


def read_and_report(received: Received) -> Any:
    if not tool_results(received):
        return answer(received, "Let me look.", [("call_1", "fs_read", {"path": "notes.txt"})])
    return answer(received, "The colour is red.")


async def test_run_follow_shows_steps_text_and_tool_calls(
    stack: Any, fake_model: FakeModel, nats_url: str, tmp_path: Path
) -> None:
    fake_model.brain = read_and_report
    data = json.dumps({"prompt": "What colour?", "tools": ["fs.read"], "model": "fast"})

    code, output = await agentbus(
        nats_url, tmp_path, "run", "tool_loop", "--input", data, "--follow"
    )

    assert code == 0, output
    assert re.search(r"run r-\w+ queued \(tool_loop\)", output)
    assert "▶ tool_loop started on r1" in output
    assert "Let me look." in output  # streamed text
    assert '→ fs.read {"path": "notes.txt"}' in output
    assert "← colour: red" in output
    assert "■ finished" in output
    assert output.rstrip().endswith("The colour is red.")


async def test_runs_list_show_resume_and_cancel(
    stack: Any, bus: Bus, fake_model: FakeModel, nats_url: str, tmp_path: Path
) -> None:
    def brain(received: Received) -> Any:
        if not tool_results(received):
            write = {"path": "cli.txt", "content": "from the cli"}
            return answer(received, "", [("call_w", "fs_write", write)])
        return answer(received, "written")

    fake_model.brain = brain
    data = {"prompt": "w", "tools": ["fs.write"], "model": "fast", "caller": "agent"}
    code, output = await agentbus(
        nats_url, tmp_path, "run", "tool_loop", "-i", json.dumps(data), "--run-id", "cli-1"
    )
    assert code == 0, output
    await wait_status(bus, "cli-1", "waiting_approval")

    code, output = await agentbus(nats_url, tmp_path, "runs", "show", "cli-1")
    assert code == 0, output
    assert "waiting_approval" in output
    assert "agentbus runs resume cli-1 --approve call_w" in output

    code, output = await agentbus(
        nats_url, tmp_path, "runs", "resume", "cli-1", "--approve-all", "--by", "ada", "--follow"
    )
    assert code == 0, output
    assert "▶ resumed (approval)" in output
    assert "■ finished" in output

    code, output = await agentbus(nats_url, tmp_path, "runs", "list", "--json")
    assert code == 0, output
    assert [(r["run_id"], r["status"]) for r in json.loads(output)["runs"]] == [
        ("cli-1", "finished")
    ]
    code, output = await agentbus(nats_url, tmp_path, "runs", "cancel", "cli-1")
    assert code == 0, output
    assert "cli-1 finished" in output

    code, output = await agentbus(nats_url, tmp_path, "run", "tool_loop", "-i", '{"prompt": 1}')
    assert code == 1, output
    assert "schema_violation" in output
