"""``agentbus run`` and ``agentbus runs`` as a user types them, against running services."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
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


async def test_runs_are_named_by_a_unique_prefix_and_listed_whole(
    stack: Any, bus: Bus, fake_model: FakeModel, nats_url: str, tmp_path: Path
) -> None:
    fake_model.brain = lambda received: answer(received, "done")
    long_id = "f9772c48a1b2c3d4e5f60718293a4b5c6d7e8f90"
    for run_id in ("pre-aa", "pre-ab", long_id):
        data = json.dumps({"prompt": "p", "model": "fast"})
        code, output = await agentbus(
            nats_url, tmp_path, "run", "tool_loop", "-i", data, "--run-id", run_id
        )
        assert code == 0, output
        await wait_status(bus, run_id, "finished")

    code, output = await agentbus(nats_url, tmp_path, "runs", "show", "pre-a")
    assert code == 2, output
    assert "'pre-a' is ambiguous: 2 run ids start with it (pre-aa, pre-ab)" in output
    code, output = await agentbus(nats_url, tmp_path, "runs", "cancel", "zzz")
    assert code == 2, output
    assert "no run id is or starts with 'zzz'; `runs list` lists them" in output

    code, output = await agentbus(nats_url, tmp_path, "runs", "show", "pre-ab", "--json")
    assert code == 0, output
    assert json.loads(output)["run_id"] == "pre-ab"
    code, output = await agentbus(nats_url, tmp_path, "runs", "show", "f977")
    assert code == 0, output
    assert f"run {long_id} (tool_loop): finished" in output
    code, output = await agentbus(nats_url, tmp_path, "runs", "follow", "f97")
    assert code == 0, output
    assert "■ finished" in output
    code, output = await agentbus(nats_url, tmp_path, "runs", "cancel", "f9772c", "--reason", "x")
    assert code == 0, output
    assert f"run {long_id} finished" in output
    code, output = await agentbus(nats_url, tmp_path, "runs", "resume", "f9")
    assert code != 2, output  # found: what the runner says of a finished run is its own

    narrow = await narrow_list(nats_url, tmp_path)
    assert all(len(line) <= 80 for line in narrow.splitlines()), narrow
    assert "…" not in first_column(narrow)
    assert long_id in first_column(narrow)  # folded onto lines, never cut


async def narrow_list(nats_url: str, tmp_path: Path) -> str:
    """``runs list`` on an 80-column terminal."""
    env = {**os.environ, "AGENTBUS_NATS_URL": nats_url, "COLUMNS": "80",
           "AGENTBUS_DATA_DIR": str(tmp_path / "cli")}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentbus.framework.cli", "runs", "list",
        env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output
    return output.decode()


def first_column(table: str) -> str:
    """The first column of a Rich table, its folded lines joined."""
    return "".join(line.split("│")[1].strip() for line in table.splitlines() if "│" in line)
