"""``agentbus maintainer``, ``agentbus decisions`` and ``agentbus escalations``."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
from pathlib import Path
from typing import Annotated, Literal

import typer
from nats.aio.msg import Msg
from rich.logging import RichHandler
from rich.table import Column, Table

from agentbus.framework import Bus, ConfigError, EmbeddedNats, resolve_nats_url, serve
from agentbus.framework.cli import console, options, print_json_lines, run, with_bus
from agentbus.interfaces.catalog.maintenance import Escalation, MaintainerDecision
from agentbus.maintainer.audit import decision_subject, read_decisions
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import ContextError
from agentbus.maintainer.escalations import (
    EscalationNotFound,
    EscalationStore,
    TransitionRefused,
)
from agentbus.maintainer.service import Maintainer

maintainer_app = typer.Typer(help="Run the maintainer agent of one component.")
decisions_app = typer.Typer(help="The maintainers' decisions (from the audit stream).")
escalations_app = typer.Typer(help="Work the maintainers paused for a person: list, approve.")


@maintainer_app.callback(invoke_without_command=True)
def maintainer(
    ctx: typer.Context,
    component: Annotated[
        Path, typer.Option("--component", "-c", help="The component folder (with context/).")
    ],
    instance: Annotated[str | None, typer.Option(help="Instance id (default: random).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Validate the component's context/ and exit.")
    ] = False,
) -> None:
    """Run ``maintainer-<component>`` until SIGTERM / Ctrl-C."""
    try:
        context = ComponentContext.load(component)
    except ContextError as exc:
        raise ConfigError(str(exc)) from None
    if check:
        console.print(f"{context.name} {context.version}: context/ is valid")
        return
    settings = options(ctx).settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(message)s",
        handlers=[RichHandler(show_path=False, console=console)],
    )
    embedded: EmbeddedNats | None = None
    url = resolve_nats_url(settings)
    if url is None:
        embedded = EmbeddedNats(settings.data_dir, write_url_file=True).start()
        url = embedded.url
    try:
        service = Maintainer(settings, instance=instance, url=url, component_dir=component)
        asyncio.run(serve(service))
    finally:
        if embedded is not None:
            embedded.stop()


@decisions_app.callback(invoke_without_command=True)
def decisions(
    ctx: typer.Context,
    component: Annotated[str | None, typer.Option(help="Only this component's.")] = None,
    limit: Annotated[int, typer.Option(help="The newest this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Then print new ones live (Ctrl-C stops).")
    ] = False,
) -> None:
    """Show the maintainers' decisions, oldest first: event, action, rule, outcome, reason."""
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            run(with_bus(options(ctx), lambda bus: _follow(bus, component, as_json)))
        return

    async def work(bus: Bus) -> list[dict[str, object]]:
        found = await read_decisions(bus, component, limit=limit)
        return [d.model_dump(mode="json") for d in found]

    rows = run(with_bus(options(ctx), work))
    if as_json:
        print_json_lines(rows)
        return
    if not rows:
        console.print("no decisions yet")
        return
    table = Table("time", "component", "event", "action", "outcome", "rule", "reason")
    for row in rows:
        table.add_row(
            str(row["at"])[11:23],
            str(row["component"]),
            f"{row['event']}: {row['summary']}",
            str(row["action"]),
            str(row["outcome"]),
            str(row["rule"]),
            str(row["reason"]),
        )
    console.print(table)


async def _follow(bus: Bus, component: str | None, as_json: bool) -> None:
    """Print every decision as it is recorded, until cancelled."""

    async def show(msg: Msg) -> None:
        record = MaintainerDecision.model_validate_json(msg.data, extra="ignore")
        if as_json:
            console.print(record.model_dump_json(), markup=False, soft_wrap=True)
            return
        console.print(
            f"{record.at[11:23]} [bold]{record.component}[/] {record.event}: {record.summary} "
            f"-> [cyan]{record.action}[/]/{record.outcome} ({record.rule}) {record.reason}",
            markup=True,
            highlight=False,
        )

    await bus.subscribe_raw(decision_subject(component), show)
    await asyncio.Event().wait()


def _print_escalation(escalation: Escalation, as_json: bool) -> None:
    if as_json:
        console.print(escalation.model_dump_json(), markup=False, soft_wrap=True)
        return
    console.print_json(escalation.model_dump_json())


@escalations_app.command("list")
def escalations_list(
    ctx: typer.Context,
    component: Annotated[str | None, typer.Option(help="Only this component's.")] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeat the option).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List escalations, oldest first."""

    async def work(bus: Bus) -> list[Escalation]:
        return await EscalationStore(bus).list(component, status)

    found = run(with_bus(options(ctx), work))
    if as_json:
        for escalation in found:
            console.print(escalation.model_dump_json(), markup=False, soft_wrap=True)
        return
    if not found:
        console.print("no escalations")
        return
    # nothing cut (an id must stay whole to be named): long values fold onto more lines
    columns = ("id", "component", "status", "event", "resume", "reason")
    table = Table(*(Column(name, overflow="fold") for name in columns))
    for e in found:
        table.add_row(e.id, e.component, e.status, e.event, e.resume, e.reason)
    console.print(table)


@escalations_app.command("show")
def escalations_show(
    ctx: typer.Context,
    escalation_id: Annotated[str, typer.Argument(help="The id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line.")] = False,
) -> None:
    """Show one escalation with its report (test matrix, branch, commit)."""

    async def work(bus: Bus) -> Escalation:
        escalation, _ = await EscalationStore(bus).find(escalation_id)
        return escalation

    try:
        _print_escalation(run(with_bus(options(ctx), work)), as_json)
    except EscalationNotFound as exc:
        raise ConfigError(str(exc)) from None


def _resolve(
    ctx: typer.Context, escalation_id: str, to: str, by: str | None, note: str, wait: float = 0
) -> None:
    async def work(bus: Bus) -> tuple[Escalation, Escalation]:
        store = EscalationStore(bus)
        decision: Literal["approve", "reject"] = "approve" if to == "approve" else "reject"
        decided = await store.decide(escalation_id, decision, by=by or getpass.getuser(), note=note)
        return decided, await _outcome(store, decided, wait)

    try:
        decided, outcome = run(with_bus(options(ctx), work))
    except (EscalationNotFound, TransitionRefused) as exc:
        raise ConfigError(str(exc)) from None
    where = f"escalation {decided.id} of {decided.component}"
    if wait <= 0 or decided.status != "approved":
        console.print(f"{where}: {decided.status}")
        return
    if outcome.status in ("done", "failed"):
        console.print(f"{where}: {outcome.status}: {outcome.note}", markup=False)
        raise typer.Exit(0 if outcome.status == "done" else 1)
    if outcome.status == "approved":
        console.print(
            f"{where}: approved, but no maintainer took it up within {wait:g} s: is "
            f"`agentbus maintainer --component <folder of {decided.component}>` running? It "
            f"resumes approved work when it starts; `agentbus escalations show {decided.id}` "
            "tells the outcome",
            markup=False,
        )
    else:
        console.print(
            f"{where}: {outcome.status}: its maintainer is still at it after {wait:g} s; "
            f"`agentbus escalations show {decided.id}` tells the outcome",
            markup=False,
        )
    raise typer.Exit(NOT_FINISHED)


NOT_FINISHED = 3
"""``escalations approve --wait``'s exit code when the work had no outcome in time."""


async def _outcome(store: EscalationStore, escalation: Escalation, wait: float) -> Escalation:
    """The escalation once its maintainer finished the approved work (done or failed), or
    as it is after ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    current = escalation
    while current.status in ("approved", "resuming") and loop.time() < deadline:
        await asyncio.sleep(min(0.2, deadline - loop.time()))
        current, _ = await store.find(escalation.id)
    return current


@escalations_app.command("approve")
def escalations_approve(
    ctx: typer.Context,
    escalation_id: Annotated[str, typer.Argument(help="The id (or a unique prefix).")],
    by: Annotated[str | None, typer.Option(help="Who approves (default: your user).")] = None,
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to follow the resumed work: prints done or failed with the "
            "maintainer's note (exit 0 / 1), or that it had no outcome in time (exit 3). "
            "0: only record the approval."
        ),
    ] = 10.0,
) -> None:
    """Approve: the component's maintainer resumes the paused work (now or when it starts)."""
    _resolve(ctx, escalation_id, "approve", by, note, wait)


@escalations_app.command("reject")
def escalations_reject(
    ctx: typer.Context,
    escalation_id: Annotated[str, typer.Argument(help="The id (or a unique prefix).")],
    by: Annotated[str | None, typer.Option(help="Who rejects (default: your user).")] = None,
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Reject: the paused work is dropped."""
    _resolve(ctx, escalation_id, "reject", by, note)
