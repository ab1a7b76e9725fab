"""Talk to the bus: ``publish``, ``request``, ``events tail``, ``deadletters``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from rich.table import Table

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import (
    console,
    err_console,
    load_registry,
    options,
    parse_json,
    print_json,
    run,
    with_bus,
)
from agentbus.framework.cli.discover import endpoint_for
from agentbus.framework.errors import ConfigError, RemoteError
from agentbus.framework.events import (
    DEAD_ERROR,
    DEAD_REASON,
    DEAD_SERVICE,
    DEAD_SUBJECT,
    DEAD_TRIES,
)
from agentbus.framework.jetstream import DEAD_LETTER
from agentbus.framework.wire import error_from, to_json
from agentbus.interfaces.errors import UnknownInterfaceError
from agentbus.interfaces.message import BusMessage, InterfaceKind
from agentbus.interfaces.metadata import AGENTBUS, Metadata, parse_header
from agentbus.interfaces.semver import Version
from agentbus.interfaces.subjects import as_caller, event_subject, events_wildcard, request_subject
from agentbus.interfaces.validation import explain

events_app = typer.Typer(help="Watch events on the bus.")
deadletters_app = typer.Typer(help="Events that kept failing, parked in the dead-letter stream.")

InterfacesOption = Annotated[
    list[str] | None,
    typer.Option("--interfaces", help="Extra registry as module:attr (repeatable)."),
]


def _validated(model: type[BusMessage], payload: Any, what: str) -> BusMessage:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ConfigError(
            f"the payload does not match {model.__name__} ({what}): {explain(exc)}"
        ) from None


def publish(
    ctx: typer.Context,
    interface: Annotated[str, typer.Argument(help="Event interface: name or name@version.")],
    payload: Annotated[str, typer.Argument(help="The event as JSON, or @file.json.")],
    interfaces: InterfacesOption = None,
) -> None:
    """Publish an event (validated when the interface is registered here)."""
    data = parse_json(payload)
    registry = load_registry(interfaces)
    name, _, version = interface.partition("@")

    async def work(bus: Bus) -> None:
        try:
            declared = registry.get(name, version or None)
        except UnknownInterfaceError:
            if not version:
                raise ConfigError(
                    f"{name} is not registered here; give its version (name@1.0.0) to publish "
                    "unvalidated, or --interfaces module:REGISTRY"
                ) from None
            parsed = Version.parse(version)
            meta = Metadata(name, parsed, bus.source)
            ack = await bus.js.publish(
                event_subject(name, parsed.major),
                json.dumps(data).encode(),
                headers=meta.to_headers(dedupe=True),
            )
        else:
            if declared.kind is not InterfaceKind.EVENT:
                raise ConfigError(f"{declared.key} is a {declared.kind}; use `agentbus request`")
            ack = await bus.publish(declared, _validated(declared.message, data, declared.key))
        console.print(
            f"published to {ack.stream} #{ack.seq}" + (" (duplicate)" if ack.duplicate else "")
        )

    run(with_bus(options(ctx), work))


def request(
    ctx: typer.Context,
    interface: Annotated[str, typer.Argument(help="Request interface: name or name@version.")],
    payload: Annotated[str, typer.Argument(help="The request as JSON, or @file.json.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 10.0,
    interfaces: InterfacesOption = None,
) -> None:
    """Send a request and print the reply. Unregistered interfaces are found via $SRV.INFO."""
    data = parse_json(payload)
    registry = load_registry(interfaces)
    name, _, version = interface.partition("@")

    async def work(bus: Bus) -> Any:
        try:
            declared = registry.get(name, version or None)
        except UnknownInterfaceError:
            declared = None
        if declared is not None:
            if declared.kind is not InterfaceKind.REQUEST:
                raise ConfigError(f"{declared.key} is a {declared.kind}, not a request")
            reply = await bus.request(
                declared, _validated(declared.message, data, declared.key), timeout=timeout
            )
            return json.loads(to_json(reply))
        endpoint = await endpoint_for(bus, name)
        if endpoint is None and not version:
            raise ConfigError(
                f"no running service serves {name} and it is not registered here; is the service "
                "up? (`agentbus status`)"
            )
        served = Version.parse(version or endpoint["metadata"]["interface_version"])  # type: ignore[index]
        subject = as_caller(request_subject(name, served.major), bus.identity)
        meta = Metadata(name, served, bus.source)
        msg = await bus.request_raw(
            subject,
            json.dumps(data).encode(),
            headers=meta.to_headers(),
            timeout=timeout,
            what=f"{name}@{served}",
        )
        error = error_from(msg)
        if error is not None:
            raise RemoteError(error)
        return json.loads(msg.data)

    print_json(run(with_bus(options(ctx), work)))


def _describe(msg: Msg) -> tuple[str, str]:
    fields = parse_header((msg.headers or {}).get(AGENTBUS, ""))
    when = ""
    if "t" in fields:
        with contextlib.suppress(ValueError, OverflowError, OSError):
            when = datetime.fromtimestamp(int(fields["t"]) / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    return when, fields.get("src", "?")


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Subject filter.")] = events_wildcard(),
    count: Annotated[
        int, typer.Option(help="Exit after this many events (0: run until Ctrl-C).")
    ] = 0,
) -> None:
    """Print events live as they are published (Ctrl-C stops)."""

    async def work(bus: Bus) -> None:
        seen = 0
        done = asyncio.Event()

        async def show(msg: Msg) -> None:
            nonlocal seen
            when, source = _describe(msg)
            console.print(f"[dim]{when}[/] [cyan]{msg.subject}[/] from [magenta]{source}[/]")
            console.print(f"  {msg.data.decode(errors='replace')}", markup=False)
            seen += 1
            if count and seen >= count:
                done.set()

        await bus.nc.subscribe(subject, cb=show)
        await bus.nc.flush()
        err_console.print(f"[dim]watching {subject} (Ctrl-C stops)[/]")
        await done.wait()

    with contextlib.suppress(KeyboardInterrupt):
        run(with_bus(options(ctx), work))


@deadletters_app.command("list")
def deadletters_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest last.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON array ([] when there are none).")
    ] = False,
) -> None:
    """List dead-lettered events with the service, reason and error."""

    async def work(bus: Bus) -> list[dict[str, Any]]:
        try:
            info = await bus.js.stream_info(DEAD_LETTER.name)
        except NotFoundError:
            return []
        if not info.state.messages or limit <= 0:
            return []  # never used, or purged: there is no message 0 to ask for
        rows = []
        first = max(info.state.first_seq, info.state.last_seq - limit + 1, 1)
        for seq in range(first, info.state.last_seq + 1):
            try:
                msg = await bus.js.get_msg(DEAD_LETTER.name, seq)
            except NotFoundError:
                continue
            headers = msg.headers or {}
            rows.append(
                {
                    "seq": seq,
                    "service": headers.get(DEAD_SERVICE, ""),
                    "subject": headers.get(DEAD_SUBJECT, ""),
                    "reason": headers.get(DEAD_REASON, ""),
                    "tries": headers.get(DEAD_TRIES, ""),
                    "error": headers.get(DEAD_ERROR, ""),
                    "payload": (msg.data or b"").decode(errors="replace"),
                }
            )
        return rows

    rows = run(with_bus(options(ctx), work))
    if as_json:
        console.print(json.dumps(rows), markup=False, soft_wrap=True)
        return
    if not rows:
        console.print("no dead letters")
        return
    table = Table("seq", "service", "subject", "reason", "tries", "error")
    for row in rows:
        table.add_row(
            *(str(row[k]) for k in ("seq", "service", "subject", "reason", "tries", "error"))
        )
    console.print(table)
