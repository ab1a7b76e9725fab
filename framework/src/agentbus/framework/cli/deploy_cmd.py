"""``agentbus deploy status|promote|rollback <component>``: blue/green deployments.

``promote`` runs the new version at ``--commit`` (``--backend local``: processes
from a git worktree; ``--backend docker``: containers of an image built for the
commit), checks it, flips the active pointer, bakes, and exits 0 only when the
new version stayed promoted. The service's target, replicas and environment
come from the ``[[service]]`` entry of the cluster file named like the component,
unless given as options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agentbus.framework.bus import Bus, resolve_nats_url
from agentbus.framework.cli.common import Options, console, options, parse_json, run, with_bus
from agentbus.framework.config import Settings
from agentbus.framework.deploy.backends import Backend, Release, backend_for
from agentbus.framework.deploy.policy import Outcome, PromotionPolicy
from agentbus.framework.deploy.probe import SmokeRequest
from agentbus.framework.deploy.promote import Promoter
from agentbus.framework.deploy.roles import SERVING_KEY
from agentbus.framework.deploy.state import DeployedVersion, DeploymentRecord, DeploymentStore
from agentbus.framework.errors import BusError, ConfigError, NotConnectedError
from agentbus.framework.supervisor import ClusterFile, ServiceSection

app = typer.Typer(help="Blue/green deployments: status, promote, rollback.", no_args_is_help=True)

Component = Annotated[str, typer.Argument(help="The component (its key in agentbus_deployments).")]
RepoOption = Annotated[Path, typer.Option(help="The git repository holding the component.")]
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="local (processes from a git worktree) or docker (containers of an image built "
        "for the commit). Default: AGENTBUS_DEPLOY_BACKEND, else local.",
    ),
]
ImageOption = Annotated[
    str | None,
    typer.Option(
        help="docker: the runtime image the commit goes on top of "
        "(AGENTBUS_DEPLOY_IMAGE; default agentbus/agentbus:latest)."
    ),
]
NetworkOption = Annotated[
    str | None,
    typer.Option(
        help="docker: the cluster's Docker network, e.g. agentbus_default "
        "(AGENTBUS_DEPLOY_NETWORK)."
    ),
]
ContainerNatsOption = Annotated[
    str | None,
    typer.Option(
        "--container-nats-url",
        help="docker: the NATS URL as containers reach it, e.g. nats://nats:4222 "
        "(AGENTBUS_DEPLOY_NATS_URL; default: the one this command uses).",
    ),
]
FileOption = Annotated[
    Path,
    typer.Option(
        "--file", "-f", help="Cluster file: its service entry of that name gives target, env."
    ),
]


def _progress(line: str) -> None:
    console.print(f"[bold blue]deploy[/] {line}", markup=True, highlight=False)


def _section(file: Path, component: str) -> ServiceSection | None:
    if not file.exists():
        return None
    for section in ClusterFile.load(file).service:
        if section.name == component:
            return section
    return None


def _deploy_settings(
    settings: Settings,
    backend: str | None,
    image: str | None,
    network: str | None,
    container_nats_url: str | None,
) -> Settings:
    """``settings`` with the deploy options given on the command line."""
    if backend not in (None, "local", "docker"):
        raise ConfigError(f"--backend {backend!r}: choose local or docker")
    given = {
        "deploy_backend": backend,
        "deploy_image": image,
        "deploy_network": network,
        "deploy_nats_url": container_nats_url,
    }
    return settings.model_copy(update={k: v for k, v in given.items() if v is not None})


def _backend(settings: Settings, repo: Path, file: Path, python_paths: list[str]) -> Backend:
    url = resolve_nats_url(settings)
    if url is None:
        raise NotConnectedError("no NATS server: run `agentbus up` or set AGENTBUS_NATS_URL")
    if not python_paths:  # like `agentbus up`: the cluster file's folder is on the path
        try:
            relative = file.resolve().parent.relative_to(repo.resolve())
        except ValueError:
            relative = Path()
        python_paths = [str(relative)]
    return backend_for(settings, repo, nats_url=url, python_paths=python_paths)


def _recorded_backend(record: DeploymentRecord) -> str | None:
    """The backend that runs (or ran) the record's versions, as its runtime says."""
    for deployed in (record, record.previous):
        runtime = deployed.runtime if deployed is not None else None
        if runtime and runtime.get("backend") in ("local", "docker"):
            return str(runtime["backend"])
    return None


def _version_row(table: Table, role: str, version: DeployedVersion, live: dict[str, str]) -> None:
    table.add_row(
        role,
        version.version,
        version.color,
        version.commit[:12],
        "\n".join(f"{i} ({live.get(i, 'stopped')})" for i in version.instances) or "-",
    )


async def _live(bus: Bus, version: DeployedVersion) -> dict[str, str]:
    found: dict[str, str] = {}
    for instance in version.instances:
        try:
            msg = await bus.request_raw(f"$SRV.PING.{version.service}.{instance}", b"", timeout=0.5)
        except BusError:
            continue
        serving = (json.loads(msg.data).get("metadata") or {}).get(SERVING_KEY) == "true"
        found[instance] = "serving" if serving else "standby"
    return found


def status(
    ctx: typer.Context,
    component: Component,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Show the active version and color, the previous one, and which instances serve."""

    async def work(bus: Bus) -> tuple[DeploymentRecord | None, dict[str, str]]:
        current = await (await DeploymentStore.open(bus.js)).get(component)
        if current is None:
            return None, {}
        live = await _live(bus, current.record)
        if current.record.previous is not None:
            live |= await _live(bus, current.record.previous)
        return current.record, live

    record, live = run(with_bus(options(ctx), work))
    if record is None:
        console.print(f"{component} has never been deployed blue/green")
        raise typer.Exit(1)
    if as_json:
        console.print(record.model_dump_json(), markup=False, soft_wrap=True)
        return
    console.print(
        f"{component}: active [bold]{record.color}[/] {record.version}, serving "
        f"{', '.join(sorted(record.serving_colors()))}, updated {record.updated_at}"
    )
    table = Table("role", "version", "color", "commit", "instances")
    _version_row(table, "active", record, live)
    if record.previous is not None:
        _version_row(table, "previous", record.previous, live)
    console.print(table)


def _smoke_requests(values: list[str]) -> list[SmokeRequest]:
    requests: list[SmokeRequest] = []
    for value in values:
        document: Any = parse_json(value, "smoke request")
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise ConfigError("a smoke request is a JSON object (or a list of them)")
            requests.append(SmokeRequest.from_json(item))
    return requests


def promote(
    ctx: typer.Context,
    component: Component,
    commit: Annotated[str, typer.Option(help="The commit, tag or branch to deploy.")] = "HEAD",
    repo: RepoOption = Path(),
    file: FileOption = Path("agentbus.toml"),
    target: Annotated[
        str | None, typer.Option(help="module:Class (default: from the cluster file).")
    ] = None,
    service: Annotated[
        str | None, typer.Option(help="The service's $SRV name (default: the component).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="Instances to run.")] = None,
    version: Annotated[str | None, typer.Option(help="Shown in status (default: sha).")] = None,
    smoke: Annotated[
        list[str] | None,
        typer.Option(
            help='Smoke request(s) as JSON or @file: {"interface": "hello.greet", "major": 1, '
            '"payload": {...}, "expect_error": null}. Repeatable.'
        ),
    ] = None,
    python_path: Annotated[
        list[str] | None,
        typer.Option(help="Import path inside the checkout (default: the cluster file's folder)."),
    ] = None,
    bake: Annotated[float, typer.Option(help="Bake window, seconds.")] = 60.0,
    max_error_increase: Annotated[
        float, typer.Option(help="Regression: error rate above baseline by more than this.")
    ] = 0.05,
    min_requests: Annotated[
        int, typer.Option(help="Requests needed before the error rate is judged.")
    ] = 20,
    health_timeout: Annotated[float, typer.Option(help="Seconds to become healthy.")] = 30.0,
    backend: BackendOption = None,
    image: ImageOption = None,
    network: NetworkOption = None,
    container_nats_url: ContainerNatsOption = None,
) -> None:
    """Start <commit> under the idle color, check it, flip, bake; roll back on a regression."""
    opts: Options = options(ctx)
    section = _section(file, component)
    chosen = target or (section.target if section else None)
    if not chosen:
        raise ConfigError(f"no target for {component}: pass --target or add it to {file}")
    release = Release(
        component=component,
        target=chosen,
        commit=commit,
        version=version or "",
        service=service or "",
        replicas=replicas or (section.replicas if section else 1),
        env=section.env if section else {},
    )
    policy = PromotionPolicy(
        health_timeout=health_timeout,
        bake_seconds=bake,
        max_error_rate_increase=max_error_increase,
        min_requests=min_requests,
    )
    settings = _deploy_settings(opts.settings(), backend, image, network, container_nats_url)
    chosen_backend = _backend(settings, repo, file, python_path or [])
    requests = _smoke_requests(smoke or [])

    async def work(bus: Bus) -> Outcome:
        promoter = Promoter(bus, chosen_backend, policy, progress=_progress)
        result = await promoter.promote(release, requests)
        _progress(f"{result.outcome}: {result.version} {result.reason}".rstrip())
        return result.outcome

    outcome = run(with_bus(opts, work))
    if outcome is not Outcome.PROMOTED:
        raise typer.Exit(1)


def rollback(
    ctx: typer.Context,
    component: Component,
    repo: RepoOption = Path(),
    file: FileOption = Path("agentbus.toml"),
    python_path: Annotated[
        list[str] | None,
        typer.Option(help="Import path inside the checkout (default: the cluster file's folder)."),
    ] = None,
    backend: BackendOption = None,
    image: ImageOption = None,
    network: NetworkOption = None,
    container_nats_url: ContainerNatsOption = None,
) -> None:
    """Make the previous version active again (restarted from its commit if it was stopped).

    The backend is the one the deployment record names, unless --backend is given."""
    opts = options(ctx)
    section = _section(file, component)
    settings = _deploy_settings(opts.settings(), backend, image, network, container_nats_url)

    async def work(bus: Bus) -> DeploymentRecord:
        recorded = settings
        if backend is None:
            current = await (await DeploymentStore.open(bus.js)).get(component)
            kind = _recorded_backend(current.record) if current is not None else None
            if kind is not None:
                recorded = settings.model_copy(update={"deploy_backend": kind})
        chosen_backend = _backend(recorded, repo, file, python_path or [])
        promoter = Promoter(bus, chosen_backend, progress=_progress)
        return await promoter.rollback(component, env=section.env if section else None)

    record = run(with_bus(opts, work))
    _progress(f"{component} is at {record.color} {record.version}")


app.command("status")(status)
app.command("promote")(promote)
app.command("rollback")(rollback)
