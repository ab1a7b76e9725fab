"""``agentbus interfaces``: list, diff, check and export interface schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, load_registry, options, run, with_bus
from agentbus.framework.errors import ConfigError
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.interfaces.compat import Compatibility
from agentbus.interfaces.registry import (
    Registry,
    check_registry,
    compare_documents,
    export_schemas,
    load_schema,
    published,
    schema_path,
)
from agentbus.interfaces.semver import Version
from agentbus.interfaces.subjects import subject_for

app = typer.Typer(help="Versioned interfaces: list them, compare versions, check and export.")

SchemasOption = Annotated[
    Path | None,
    typer.Option(
        "--schemas",
        help="Folder of published schemas (default: interfaces/schemas of the repository).",
    ),
]
InterfacesOption = Annotated[
    list[str] | None,
    typer.Option("--interfaces", help="Extra registry as module:attr (repeatable)."),
]


def schemas_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / "interfaces" / "schemas"
        if candidate.is_dir():
            return candidate
    raise ConfigError("no interfaces/schemas folder here or above; pass --schemas DIR")


@app.command("list")
def list_interfaces(interfaces: InterfacesOption = None) -> None:
    """List the registered interface versions and their subjects."""
    table = Table("interface", "version", "kind", "subject", "description")
    for interface in load_registry(interfaces):
        table.add_row(
            interface.name,
            str(interface.version),
            interface.kind.value,
            subject_for(interface),
            interface.description,
        )
    console.print(table)


def _document(reference: str, registry: Registry, schemas: Path | None) -> dict[str, Any]:
    path = Path(reference)
    if path.suffix == ".json" and path.is_file():
        return load_schema(path)
    name, _, version = reference.partition("@")
    if not version:
        raise ConfigError(f"{reference!r}: give a schema file or name@version")
    try:
        return registry.get(name, version).json_schema()
    except LookupError:
        file = schema_path(schemas_dir(schemas), name, Version.parse(version))
        if file.is_file():
            return load_schema(file)
        raise ConfigError(
            f"{reference} is neither registered nor published in {file.parent}"
        ) from None


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="name@version or a schema .json file")],
    new: Annotated[str, typer.Argument(help="name@version or a schema .json file")],
    schemas: SchemasOption = None,
    interfaces: InterfacesOption = None,
) -> None:
    """Classify the change between two versions: none, compatible (minor) or breaking (major)."""
    registry = load_registry(interfaces)
    report = compare_documents(_document(old, registry, schemas), _document(new, registry, schemas))
    style = {
        Compatibility.NONE: "green",
        Compatibility.COMPATIBLE: "yellow",
        Compatibility.BREAKING: "red",
    }[report.compatibility]
    console.print(
        f"[{style}]{report.compatibility.value}[/] ({report.required_bump()} bump): {old} -> {new}"
    )
    for finding in sorted(report.findings, key=lambda f: f.path):
        console.print(f"  {finding.compatibility.value:10} {finding.path}: {finding.message}")


@app.command()
def announce(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="name@version consumers use today")],
    new: Annotated[str, typer.Argument(help="name@version being published")],
    component: Annotated[
        str | None, typer.Option(help="The component that provides the interface.")
    ] = None,
    schemas: SchemasOption = None,
    interfaces: InterfacesOption = None,
) -> None:
    """Broadcast `interface.changed` with the checker's verdict, for maintainers to act on."""
    registry = load_registry(interfaces)
    report = compare_documents(_document(old, registry, schemas), _document(new, registry, schemas))
    old_name, _, old_version = old.partition("@")
    new_name, _, new_version = new.partition("@")
    if Path(old).suffix == ".json" or Path(new).suffix == ".json" or old_name != new_name:
        raise ConfigError("announce takes two versions of one interface: name@old name@new")
    event = InterfaceChanged(
        interface=new_name,
        old_version=old_version,
        new_version=new_version,
        compatibility=report.compatibility.value,
        reasons=report.reasons,
        component=component,
    )

    async def work(bus: Bus) -> None:
        ack = await bus.publish(INTERFACE_CHANGED, event)
        console.print(
            f"announced {new_name} {old_version} -> {new_version}: "
            f"{report.compatibility.value} ({ack.stream} #{ack.seq})"
        )

    run(with_bus(options(ctx), work))


@app.command()
def check(schemas: SchemasOption = None, interfaces: InterfacesOption = None) -> None:
    """Fail when an interface changed without the version bump its change needs."""
    directory = schemas_dir(schemas)
    registry = load_registry(interfaces)
    problems = check_registry(registry, directory)
    unpublished = [i.key for i in registry if i.version not in published(directory, i.name)]
    for problem in problems:
        console.print(f"[red]✗[/] {problem.interface}: {problem.message}")
        if problem.report is not None:
            for reason in problem.report.reasons:
                console.print(f"    {reason}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {len(registry)} interface version(s) consistent with {directory}")
    if unpublished:
        console.print(
            f"  not yet exported: {', '.join(unpublished)} (run `agentbus interfaces export`)"
        )


@app.command()
def export(schemas: SchemasOption = None, interfaces: InterfacesOption = None) -> None:
    """Write the JSON Schema of every registered interface version."""
    directory = schemas_dir(schemas) if schemas is None else schemas
    written = export_schemas(load_registry(interfaces), directory)
    for path in written:
        console.print(f"wrote {path}")
    console.print(f"{len(written)} file(s) written, the rest unchanged")
