"""Shared pieces of the workflow-runner tests: a scripted fake model, polling, run events,
the CLI in a subprocess.

The fake model (``FakeModel`` with its *brain*, and the ``answer`` / ``messages`` /
``tool_results`` / ``first_user`` helpers) is the model gateway's test kit
(:mod:`agentbus.model_gateway.testing`), re-exported here under the names these tests use.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentbus.framework import Bus, NoRespondersError, RemoteError, RequestTimeoutError
from agentbus.framework.testing import eventually
from agentbus.interfaces import BusMessage, event_interface
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_GET,
    GetRequest,
    RunEvent,
    RunInfo,
)
from agentbus.interfaces.subjects import run_events_subject
from agentbus.model_gateway.testing import Brain as Brain
from agentbus.model_gateway.testing import FakeModel as FakeModel
from agentbus.model_gateway.testing import Received as Received
from agentbus.model_gateway.testing import Scripted as Scripted
from agentbus.model_gateway.testing import answer as answer
from agentbus.model_gateway.testing import first_user as first_user
from agentbus.model_gateway.testing import messages as messages
from agentbus.model_gateway.testing import tool_results as tool_results
from agentbus.workflow_runner import RunContext, StartWorkflow, WorkflowApp

SIDE_EFFECT = "./side_effect.sh"
"""A script in the workspace (conftest's ``workspace``) that leaves a mark (side.log), then
takes 1.5 s."""


def policy(workspace: Path, **extra: Any) -> dict[str, Any]:
    """The tool policy of callers ``workflow-runner`` (runs) and ``agent`` (asks first)."""
    runner = {
        "roots": [str(workspace)],
        "tools": ["fs.*", "shell.exec"],
        "commands": [SIDE_EFFECT],  # a fixed script: sh itself would need shell = true
        "medium": "run",
        **extra,
    }
    return {
        "executor": {"relays": ["workflow-runner"]},
        "policy": {
            "workflow-runner": runner,
            "agent": {**runner, "medium": "ask"},
        },
    }


def side_effect_then_report(received: Received) -> Any:
    """A brain: first turn runs :data:`SIDE_EFFECT` through shell.exec, then says "done"."""
    if not tool_results(received):
        return answer(received, "", [("call_sh", "shell_exec", {"argv": [SIDE_EFFECT]})])
    return answer(received, "done")


async def get_run(bus: Bus, run_id: str) -> RunInfo:
    return (await bus.request(WORKFLOWS_GET, GetRequest(run_id=run_id))).run


async def wait_status(bus: Bus, run_id: str, *statuses: str, timeout: float = 20.0) -> RunInfo:
    """Poll ``workflows.get`` until the run is in one of ``statuses``."""
    seen: list[str] = []

    async def reached() -> RunInfo | None:
        try:
            run = await get_run(bus, run_id)
        except (NoRespondersError, RequestTimeoutError):  # the runner is (re)connecting
            return None
        except RemoteError as exc:
            if exc.code == "not_found":  # an event starts it: it may not exist yet
                return None
            raise
        if not seen or seen[-1] != run.status:
            seen.append(run.status)
        return run if run.status in statuses else None

    try:
        found: RunInfo = await eventually(
            reached, timeout=timeout, what=f"run {run_id} in {statuses}"
        )
    except AssertionError as exc:
        run = await get_run(bus, run_id)
        raise AssertionError(f"{exc}; statuses seen {seen}; error {run.error}") from None
    return found


async def run_events(bus: Bus, run_id: str) -> list[RunEvent]:
    """Every stored event of a run, in order."""
    sub = await bus.js.subscribe(run_events_subject(run_id), ordered_consumer=True)
    events: list[RunEvent] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:
                return events
            events.append(RunEvent.model_validate_json(msg.data))
    finally:
        await sub.unsubscribe()


async def agentbus(nats_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run the ``agentbus`` CLI in a subprocess; its exit code and output (with stderr)."""
    env = {
        **os.environ,
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATA_DIR": str(tmp_path / "cli"),
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentbus.framework.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


# -- a routed app: an event starts a run of a plain workflow (no model, no tools) --------------


class Note(BusMessage):
    number: int
    text: str


NOTE_TAKEN = event_interface(
    "test.note.taken", "1.0.0", payload=Note, description="A note was taken."
)


class NoteInput(BaseModel):
    text: str


notes = WorkflowApp("notes")


@notes.workflow("keep_note", input=NoteInput)
async def keep_note(run: RunContext, data: NoteInput) -> dict[str, Any]:
    return {"kept": data.text}


@notes.on(NOTE_TAKEN)
def on_note(event: Note) -> StartWorkflow:
    return StartWorkflow("keep_note", {"text": event.text}, run_id=f"note-{event.number}")
