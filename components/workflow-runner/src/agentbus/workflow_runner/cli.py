"""``agentbus run <workflow> --input '{...}' --follow`` and ``agentbus runs ...``.

``runs list|show|follow|cancel|resume`` reach the runner through the ``workflows.*``
interfaces; ``--follow`` reads the run's events from the ``AGENTBUS_RUNS`` stream;
``runs purge`` works on the runs' KV bucket directly (no runner needs to be up).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import nats.errors
import typer
from nats.js.api import DeliverPolicy
from rich.markup import escape
from rich.table import Table

from agentbus.framework import Bus, RemoteError
from agentbus.framework.cli import by_prefix, console, options, parse_json, run, with_bus
from agentbus.interfaces.catalog.workflows import (
    TERMINAL,
    WORKFLOWS_CANCEL,
    WORKFLOWS_GET,
    WORKFLOWS_LIST,
    WORKFLOWS_RESUME,
    WORKFLOWS_START,
    CancelRequest,
    GetRequest,
    ListRunsRequest,
    ResumeRequest,
    RunEnded,
    RunEvent,
    RunInfo,
    RunResumed,
    RunStarted,
    RunTextDelta,
    RunToolResult,
    StartRequest,
    StepFinished,
    StepStarted,
    ToolCalled,
    WaitingApproval,
)
from agentbus.interfaces.subjects import run_events_subject
from agentbus.workflow_runner.deciding import decide_pending
from agentbus.workflow_runner.dispatch import EVENTS_STREAM
from agentbus.workflow_runner.retention import ExpiredRun, parse_duration, sweep
from agentbus.workflow_runner.store import RunStore

run_app = typer.Typer(
    help="Start a workflow run: agentbus run <workflow> --input '{...}' [--follow].",
    invoke_without_command=True,
    # a one-command app: options may follow the workflow argument (a group would stop there)
    context_settings={"allow_interspersed_args": True},
    subcommand_metavar="",
)
runs_app = typer.Typer(help="Workflow runs: list, show, follow, cancel, resume, purge.")

RunIdArgument = Annotated[str, typer.Argument(help="The run id, or a unique prefix of it.")]

EXIT = {"finished": 0, "failed": 1, "cancelled": 1}


@run_app.callback()
def start(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="tool_loop, react, reflection or yours.")],
    input_json: Annotated[
        str, typer.Option("--input", "-i", help="The input JSON (or @file.json).")
    ] = "{}",
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show live progress until the run ends.")
    ] = False,
) -> None:
    """Start a workflow run; prints its id (with --follow: its steps, text and tool calls)."""
    data = parse_json(input_json, "input")
    if not isinstance(data, dict):
        raise typer.BadParameter("the input must be a JSON object", param_hint="--input")

    async def work(bus: Bus) -> int:
        reply = await bus.request(
            WORKFLOWS_START, StartRequest(workflow=workflow, input=data, run_id=run_id)
        )
        console.print(f"run [bold]{reply.run_id}[/] {reply.status} ({workflow})")
        if not follow:
            return 0
        return await follow_run(bus, reply.run_id)

    sys.exit(run(with_bus(options(ctx), work)))


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Runs, newest first."""

    async def work(bus: Bus) -> Any:
        request = ListRunsRequest.model_validate(
            {"status": status, "workflow": workflow, "limit": limit}
        )
        return await bus.request(WORKFLOWS_LIST, request)

    reply = run(with_bus(options(ctx), work))
    if as_json:
        console.print_json(reply.model_dump_json())
        return
    # nothing cut (an id must stay whole to be named): long values fold onto more lines
    table = Table(title="workflow runs")
    for column in ("run", "workflow", "status", "created", "attempts", "error"):
        table.add_column(column, overflow="fold")
    for item in reply.runs:
        error = f"{item.error.code}: {item.error.message}" if item.error else ""
        table.add_row(
            item.run_id,
            item.workflow,
            _status(item.status),
            item.created_at,
            str(item.attempts),
            escape(error[:80]),
        )
    console.print(table)


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: RunIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A run: status, steps, pending approvals, result or error."""

    async def work(bus: Bus) -> RunInfo:
        found = await resolve_run_id(bus, run_id)
        return (await bus.request(WORKFLOWS_GET, GetRequest(run_id=found))).run

    info = run(with_bus(options(ctx), work))
    if as_json:
        console.print_json(info.model_dump_json())
        return
    console.print(f"run [bold]{info.run_id}[/] ({info.workflow}): {_status(info.status)}")
    console.print(f"created {info.created_at}, updated {info.updated_at}, attempts {info.attempts}")
    table = Table(title="steps")
    for column in ("#", "step", "ms", "result"):
        table.add_column(column)
    for step in info.steps:
        table.add_row(
            str(step.index), step.name, f"{step.duration_ms:.1f}", escape(_short(step.result))
        )
    console.print(table)
    _print_pending(info.run_id, info.pending_approvals)
    if info.result is not None:
        console.print("[green]result:[/]")
        console.print_json(json.dumps(info.result))
    if info.error is not None:
        console.print(f"[red]error {info.error.code}:[/] {escape(info.error.message)}")


@runs_app.command("follow")
def follow(ctx: typer.Context, run_id: RunIdArgument) -> None:
    """Show a run's progress from its start until it ends."""

    async def work(bus: Bus) -> int:
        return await follow_run(bus, await resolve_run_id(bus, run_id))

    sys.exit(run(with_bus(options(ctx), work)))


@runs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: RunIdArgument,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the run).")] = None,
) -> None:
    """Cancel a run; its finished steps stay recorded."""

    async def work(bus: Bus) -> Any:
        found = await resolve_run_id(bus, run_id)
        return await bus.request(WORKFLOWS_CANCEL, CancelRequest(run_id=found, reason=reason))

    reply = run(with_bus(options(ctx), work))
    console.print(f"run [bold]{reply.run_id}[/] {_status(reply.status)}")


@runs_app.command("resume")
def resume(
    ctx: typer.Context,
    run_id: RunIdArgument,
    approve: Annotated[
        list[str] | None, typer.Option("--approve", help="Approve this tool-call id.")
    ] = None,
    deny: Annotated[
        list[str] | None, typer.Option("--deny", help="Deny this tool-call id.")
    ] = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every pending call.")
    ] = False,
    by: Annotated[str, typer.Option("--by", help="Who decides (for the audit).")] = "cli",
    note: Annotated[str | None, typer.Option(help="A note with the decision.")] = None,
    follow_after: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow the run afterwards.")
    ] = False,
) -> None:
    """Decide a run's pending approvals (as you, the operator, at the tool executor) and
    continue it; without decisions, queue a waiting run again."""

    async def work(bus: Bus) -> int:
        info = await _get(bus, await resolve_run_id(bus, run_id))
        run_id_found = info.run_id
        decisions: dict[str, str] = {}
        if approve_all:
            decisions = {p.tool_call_id: "approve" for p in info.pending_approvals}
        decisions |= dict.fromkeys(approve or [], "approve")
        decisions |= dict.fromkeys(deny or [], "deny")
        if decisions:
            decided = await decide_pending(bus, info, decisions, decided_by=by, note=note)
            for call_id, status in sorted(decided.items()):
                console.print(f"{call_id}: {status}")
            info = await _until_taken(bus, run_id_found, set(decided))
            console.print(f"run [bold]{info.run_id}[/] {_status(info.status)}")
            _print_pending(info.run_id, info.pending_approvals)
        else:
            reply = await bus.request(WORKFLOWS_RESUME, ResumeRequest(run_id=run_id_found))
            console.print(f"run [bold]{reply.run_id}[/] {_status(reply.status)}")
            _print_pending(reply.run_id, reply.pending_approvals)
        return await follow_run(bus, run_id_found) if follow_after else 0

    sys.exit(run(with_bus(options(ctx), work)))


async def resolve_run_id(bus: Bus, given: str) -> str:
    """The run id ``given`` is (whole) or starts (a unique prefix), from the runs' bucket."""
    keys = await (await RunStore.open(bus.js)).keys("run.>")
    return by_prefix(given, (k.removeprefix("run.") for k in keys), "run", listed_by="runs list")


async def _get(bus: Bus, run_id: str) -> RunInfo:
    return (await bus.request(WORKFLOWS_GET, GetRequest(run_id=run_id))).run


async def _until_taken(bus: Bus, run_id: str, calls: set[str], timeout: float = 5.0) -> RunInfo:
    """The run once the runner has noted the decisions on ``calls`` (their event reaches it
    shortly), or as it is after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = (await bus.request(WORKFLOWS_GET, GetRequest(run_id=run_id))).run
        noted = all(
            p.decision is not None for p in info.pending_approvals if p.tool_call_id in calls
        )
        if (
            info.status != "waiting_approval"
            or noted
            or asyncio.get_running_loop().time() > deadline
        ):
            return info
        await asyncio.sleep(0.1)


@runs_app.command("purge")
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Remove runs that ended longer ago than this: seconds (3600) or 90s, 30m, 12h, "
            "7d.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the runs that would go; remove nothing.")
    ] = False,
) -> None:
    """Remove finished, failed and cancelled runs that ended long ago, with their steps.

    Queued, running and waiting runs stay, however old. The runner does the same every
    AGENTBUS_RUNNER_RETENTION_SWEEP_INTERVAL for AGENTBUS_RUNNER_RETENTION_SECONDS.
    """
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    if seconds <= 0:
        raise typer.BadParameter(
            "must be more than 0 (1s removes every run that has ended)", param_hint="--older-than"
        )

    async def work(bus: Bus) -> list[ExpiredRun]:
        return await sweep(await RunStore.open(bus.js), seconds, dry_run=dry_run)

    expired = run(with_bus(options(ctx), work))
    if not expired:
        console.print(f"no run ended over {older_than} ago: nothing to remove")
        return
    table = Table(title="runs that would be removed" if dry_run else "removed runs")
    for column in ("run", "workflow", "status", "ended", "steps"):
        table.add_column(column)
    for item in expired:
        table.add_row(
            item.run.run_id,
            item.run.workflow,
            _status(item.run.status),
            item.run.updated_at,
            str(len(item.step_keys)),
        )
    console.print(table)
    counts = (
        f"{len(expired)} run(s), {sum(len(e.step_keys) for e in expired)} step key(s) and "
        f"{sum(len(e.approval_keys) for e in expired)} approval key(s)"
    )
    if dry_run:
        console.print(f"would remove {counts} (dry run: nothing removed)")
    else:
        console.print(f"removed {counts}")


# -- following -------------------------------------------------------------------------


async def follow_run(bus: Bus, run_id: str) -> int:
    """Print a run's events (from its first) until it ends; the exit code for its outcome."""
    sub = await bus.js.subscribe(
        run_events_subject(run_id),
        stream=EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    printer = _Printer(run_id)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2.0)
            except (TimeoutError, nats.errors.TimeoutError):
                try:
                    request = GetRequest(run_id=run_id, include_steps=False)
                    info = (await bus.request(WORKFLOWS_GET, request)).run
                except RemoteError as exc:
                    if exc.code == "not_found":  # not started yet (e.g. by an event route)
                        continue
                    raise
                if info.status in TERMINAL:  # ended; its last events may be gone (max age)
                    printer.ended(info.status, info.result, info.error)
                    return EXIT[info.status]
                continue
            event = RunEvent.model_validate_json(msg.data)
            if (outcome := printer.show(event)) is not None:
                return outcome
    finally:
        await sub.unsubscribe()


class _Printer:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.in_text = False

    def _break(self) -> None:
        if self.in_text:
            console.print()
            self.in_text = False

    def show(self, event: RunEvent) -> int | None:
        body = event.event
        if isinstance(body, RunTextDelta):
            console.print(escape(body.text), end="", soft_wrap=True)
            self.in_text = True
            return None
        self._break()
        if isinstance(body, RunStarted):
            console.print(f"[bold]▶ {body.workflow}[/] started on {event.replica}")
        elif isinstance(body, RunResumed):
            console.print(
                f"[bold]▶ resumed[/] ({body.reason}) on {event.replica}, "
                f"{body.replayed_steps} step(s) replayed"
            )
        elif isinstance(body, StepStarted):
            console.print(f"[dim]· step {body.index} {escape(body.name)}[/]")
        elif isinstance(body, StepFinished):
            console.print(f"[dim]  done in {body.duration_ms:.0f} ms[/]")
        elif isinstance(body, ToolCalled):
            arguments = escape(json.dumps(body.arguments)[:300])
            console.print(f"[cyan]→ {escape(body.tool)}[/] {arguments}")
        elif isinstance(body, RunToolResult):
            colour = "red" if body.is_error else "green"
            console.print(f"[{colour}]← {escape(_first_lines(body.content))}[/]")
        elif isinstance(body, WaitingApproval):
            _print_pending(self.run_id, body.pending_approvals)
        elif isinstance(body, RunEnded):
            self.ended(body.kind, body.result, body.error)
            return EXIT[body.kind]
        return None

    def ended(self, status: str, result: Any, error: Any) -> None:
        self._break()
        console.print(f"[bold]■ {_status(status)}[/]")
        if result is not None:
            text = result.get("text") if isinstance(result, dict) else None
            console.print(escape(text) if isinstance(text, str) else escape(_short(result, 2000)))
        if error is not None:
            console.print(f"[red]{error.code}:[/] {escape(error.message)}")


def _print_pending(run_id: str, pending: list[Any]) -> None:
    if not pending:
        return
    console.print("[yellow]waiting for approval:[/]")
    for item in pending:
        decision = f" ({item.decision})" if item.decision else ""
        console.print(
            f"  {escape(item.tool)} {escape(json.dumps(item.arguments)[:200])}{decision}\n"
            f"    agentbus runs resume {run_id} --approve {item.tool_call_id}   "
            f"(or --deny; or agentbus approvals approve {item.approval_id})"
        )


def _status(status: str) -> str:
    colour = {"finished": "green", "failed": "red", "cancelled": "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/]"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_lines(text: str, lines: int = 4) -> str:
    kept = text.splitlines()[:lines]
    more = len(text.splitlines()) - lines
    return "\n  ".join(kept) + (f"\n  … {more} more line(s)" if more > 0 else "")
