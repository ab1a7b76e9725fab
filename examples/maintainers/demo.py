"""The maintainers demo (issue 6): every component's maintainer hears three broadcasts.

    python examples/maintainers/demo.py                         # its own cluster
    AGENTBUS_NATS_URL=nats://127.0.0.1:4222 python examples/maintainers/demo.py
                                                                # a running one (compose)

Brings up a local cluster with ``agentbus up`` on an embedded nats-server: the model
gateway, the tool executor and the workflow runner (those that are installed), and one
maintainer per component (``maintainer-<name>``, over a scratch git copy of its context,
so the demo never touches this repository) plus one for a scratch git copy of
``examples/maintainers/sample-component``. Then broadcasts a compatible interface change,
a breaking one and a patch dependency update, prints every maintainer's decision as it
is recorded, and waits for the sample's patch update to be tested on the old and the new
version and promoted blue -> green (the sample is a service: each version runs as
processes from a git worktree at its commit, ``agentbus.framework.deploy``), and for the
breaking change to be escalated. Prints a
summary (``agentbus decisions``, ``agentbus escalations list``, the deployment record)
and stops the cluster with Ctrl-C (SIGINT), checking that no process is left.

No model is configured (no provider keys reach the gateway), so ``ask-model`` decisions
escalate; packages come from a local folder of wheels (offline).

With ``AGENTBUS_NATS_URL`` set, the demo joins that cluster instead (``docker compose up``,
or another ``agentbus up``): its services and maintainers are the ones that answer
``$SRV.INFO`` there, and only the sample's maintainer runs here, on this machine. When the
URL is a compose cluster's NATS, the sample is deployed as containers on the cluster's
network (the docker backend: an image built for each commit); otherwise as processes. A
cluster with authentication is joined as its operator (``AGENTBUS_NATS_NKEY_FILE``,
``AGENTBUS_IDENTITY=operator``); the keys of ``maintainer-sample-greeter`` and
``sample-greeter`` must lie beside the operator's, as compose's auth-init leaves them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import git
from nats.aio.msg import Msg

from agentbus.framework import (
    EVENTS,
    Bus,
    BusError,
    ConfigError,
    Settings,
    load_service,
    redact_url,
)
from agentbus.framework.cli import services
from agentbus.framework.deploy import DeploymentStore
from agentbus.framework.deploy.backends.docker import LABEL, DockerBackend
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    MaintainerDecision,
)
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.subjects import as_caller, request_subject
from agentbus.maintainer.audit import decision_subject
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.deployers import BlueGreenDeployer, current_deployment
from agentbus.maintainer.errors import ContextError
from agentbus.maintainer.testing import sample_repository, uv_environment, wheel_folder

ROOT = Path(__file__).resolve().parents[2]
AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]
SERVICES = {
    "model-gateway": "agentbus.model_gateway.service:ModelGateway",
    "tool-executor": "agentbus.tool_executor.service:ToolExecutor",
    "workflow-runner": "agentbus.workflow_runner.service:WorkflowRunner",
}
PROVIDER_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "AGENTBUS_MODELS_FILE",
)
OWN_CREDENTIALS = (
    "AGENTBUS_NATS_NKEY_FILE",
    "AGENTBUS_NATS_CREDS_FILE",
    "AGENTBUS_NATS_TOKEN",
    "AGENTBUS_NATS_USER",
    "AGENTBUS_NATS_PASSWORD",
    "AGENTBUS_IDENTITY",
)
SAMPLE = "sample-greeter"
ENDED = ("promoted", "failed", "escalated", "proposed", "rejected", "needs-human")
"""The outcomes a maintainer records last for a change it acted on."""
EVENTS_TO_SEND: list[tuple[str, Interface[Any, Any], BusMessage]] = [
    (
        "a patch dependency update: greetlib 1.0.0 -> 1.0.1",
        DEPENDENCY_UPDATED,
        DependencyUpdated(package="greetlib", from_version="1.0.0", to_version="1.0.1"),
    ),
    (
        "a compatible interface change: sample.greet 1.0.0 -> 1.1.0",
        INTERFACE_CHANGED,
        InterfaceChanged(
            interface="sample.greet",
            old_version="1.0.0",
            new_version="1.1.0",
            compatibility="compatible",
            reasons=["field_added: /properties/language (optional)"],
            component=SAMPLE,
        ),
    ),
    (
        "a breaking interface change: model.catalog 1.0.0 -> 2.0.0",
        INTERFACE_CHANGED,
        InterfaceChanged(
            interface="model.catalog",
            old_version="1.0.0",
            new_version="2.0.0",
            compatibility="breaking",
            reasons=["field_removed: /properties/source"],
            component="model-gateway",
        ),
    ),
]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def agentbus(*args: str, env: dict[str, str]) -> str:
    print(f"$ agentbus {' '.join(args)}", flush=True)
    wide = {**env, "COLUMNS": env.get("COLUMNS", "160")}
    done = subprocess.run([*AGENTBUS, *args], env=wide, text=True, capture_output=True, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"`agentbus {args[0]}` failed: {done.stderr.strip()}")
    return done.stdout


def scratch_components(scratch: Path) -> list[Path]:
    """Copies of the real components' context/ and pyproject.toml in a scratch git repository,
    so that no maintainer of the demo can touch this repository."""
    root = scratch / "components-repo"
    folders = []
    for source in sorted((ROOT / "components").iterdir()):
        if not (source / "context").is_dir():
            continue
        target = root / source.name
        shutil.copytree(source / "context", target / "context")
        if (source / "pyproject.toml").is_file():
            shutil.copy2(source / "pyproject.toml", target / "pyproject.toml")
        folders.append(target)
    files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    repo = git.Repo.init(root)
    repo.index.add(files)
    who = git.Actor("demo", "demo@example.invalid")
    repo.index.commit("components for the demo", author=who, committer=who)
    return folders


def cluster_file(scratch: Path, sample: Path, external: str | None) -> tuple[Path, list[str]]:
    """The cluster: installed services, and a maintainer per component with a valid context/.

    Joining a running cluster (``external``), only the sample's maintainer runs here."""
    if external:
        lines = [f"[nats]\nurl = {json.dumps(external)}\n"]
        folders = [sample]
    else:
        lines = ['[nats]\nurl = ""\nport = 0\n']
        for name, target in SERVICES.items():
            try:
                load_service(target)
            except ConfigError as exc:
                print(f"(skipping {name}: {exc})")
                continue
            lines.append(f'[[service]]\nname = "{name}"\ntarget = "{target}"\n')
        folders = [*scratch_components(scratch), sample]
    maintained = []
    for folder in folders:
        try:
            component = ComponentContext.load(folder)
        except ContextError as exc:
            print(f"(no maintainer for {folder.name}: {exc})")
            continue
        maintained.append(component.name)
        lines.append(
            f'[[service]]\nname = "maintainer-{component.name}"\n'
            'target = "agentbus.maintainer.service:Maintainer"\n'
            f'env = {{ AGENTBUS_MAINTAINER_COMPONENT = "{folder}" }}\n'
        )
    path = scratch / "agentbus.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, maintained


def compose_deploy_environment(url: str) -> dict[str, str]:
    """Deploy settings for the docker backend when ``url`` is the NATS port a compose
    cluster publishes (its ``nats`` service), else none (the sample runs as processes)."""
    try:
        import docker
    except ImportError:
        print("(no Docker SDK (pip install docker), so the sample runs as processes)")
        return {}
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        print(f"(no Docker engine answers, so the sample runs as processes: {exc})")
        return {}
    port = str(urlsplit(url).port or 4222)
    try:
        nats = client.containers.list(filters={"label": "com.docker.compose.service=nats"})
    finally:
        client.close()
    for container in nats:
        bindings = (container.ports or {}).get("4222/tcp") or []
        if any(binding.get("HostPort") == port for binding in bindings):
            network = next(iter(container.attrs["NetworkSettings"]["Networks"]))
            return {
                "AGENTBUS_DEPLOY_BACKEND": "docker",
                "AGENTBUS_DEPLOY_NETWORK": network,
                "AGENTBUS_DEPLOY_NATS_URL": "nats://nats:4222",
                "AGENTBUS_DEPLOY_IMAGE": os.environ.get(
                    "AGENTBUS_IMAGE", "agentbus/agentbus:latest"
                ),
            }
    print(f"(no compose service `nats` publishes port {port}, so the sample runs as processes)")
    return {}


def joining_keys(data_dir: Path) -> None:
    """The keys of the identities that join a cluster with authentication from here (the
    sample's maintainer and the sample), taken from beside the operator's key
    (``AGENTBUS_NATS_NKEY_FILE``; compose's auth-init leaves them there) into the folder
    ``agentbus up`` gives its replicas' keys from."""
    operator_key = os.environ.get("AGENTBUS_NATS_NKEY_FILE")
    if not operator_key:
        print("(no AGENTBUS_NATS_NKEY_FILE: joining as a cluster without authentication)")
        return
    folder = data_dir / "auth"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in (f"maintainer-{SAMPLE}", SAMPLE):
        found = Path(operator_key).parent / f"{name}.nk"
        if not found.is_file():
            raise SystemExit(
                f"the cluster's key of {name} is not beside the operator's ({found}): the "
                "cluster must admit the demo's identities (deploy/cluster.toml does)"
            )
        shutil.copyfile(found, folder / found.name)
        (folder / found.name).chmod(0o600)
    print(f"keys of maintainer-{SAMPLE} and {SAMPLE} from {Path(operator_key).parent}")


def sample_containers(*, remove: bool = False) -> list[str]:
    """The names of the containers the docker backend runs for the sample (none are left
    after a demo), removed first when ``remove``: only an interrupted earlier demo leaves
    any, and its instance names repeat from run to run, so they would block this one."""
    import docker

    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={SAMPLE}"})
        for container in found if remove else ():
            container.remove(force=True)
    finally:
        client.close()
    return [container.name or container.id or "?" for container in found]


async def cluster_maintainers(settings: Settings) -> list[str]:
    """The components whose maintainers answer ``$SRV.INFO`` in a running cluster."""
    async with Bus(settings, Source("demo", "demo")) as bus:
        found = await services(bus, wait=1.5)
        store = await DeploymentStore.open(bus.js)
        earlier = await store.get(SAMPLE)
        if earlier is not None:  # an earlier run's record: start the sample afresh
            await store.delete(SAMPLE, revision=earlier.revision)
    names = {str(info.get("name", "")) for info in found}
    return sorted(n.removeprefix("maintainer-") for n in names if n.startswith("maintainer-"))


async def wait_for_maintainers(bus: Bus, names: list[str], timeout: float = 90.0) -> None:
    """Until every maintainer's durable consumers exist (events before that would be missed)."""
    deadline = time.monotonic() + timeout
    missing = list(names)
    while missing and time.monotonic() < deadline:
        still = []
        for name in missing:
            try:
                await bus.js.consumer_info(EVENTS.name, f"maintainer-{name}__interface_changed")
                await bus.js.consumer_info(EVENTS.name, f"maintainer-{name}__dependency_updated")
            except Exception:
                still.append(name)
        missing = still
        if missing:
            await asyncio.sleep(0.3)
    if missing:
        raise SystemExit(f"maintainers did not start within {timeout:.0f}s: {missing}")


async def greet(bus: Bus) -> str:
    """What the live sample service answers (through its queue group: the serving color)."""
    subject = as_caller(request_subject("sample.greet", 1), bus.identity)
    reply = await bus.request_raw(subject, b'{"name": "Ada"}', timeout=10)
    answer = json.loads(reply.data)
    return f"{answer['greeting']!r} (version {answer['version']})"


def show(record: MaintainerDecision) -> None:
    colour = {"ignore": "2", "act": "32", "escalate": "33"}[record.action]
    print(
        f"  \033[{colour}m{record.component:<16}\033[0m {record.event:<19} "
        f"{record.action:>8} / {record.outcome:<11} [{record.rule}] {record.reason}",
        flush=True,
    )
    report = record.details.get("report")
    if record.outcome in ("promoted", "escalated") and isinstance(report, dict):
        matrix = report["matrix"]
        assert isinstance(matrix, dict)
        tests = matrix["tests"]
        assert isinstance(tests, dict)
        print(f"{'':>19}tests on the old and the new version ({report['title']}):")
        for test, outcome in tests.items():
            assert isinstance(outcome, dict)
            print(f"{'':>21}{outcome['old']:>7} -> {outcome['new']:<7} {test}")
    if record.outcome == "promoted":
        previous = record.details.get("previous") or {}
        assert isinstance(previous, dict)
        print(
            f"{'':>19}promoted {previous.get('color')} {previous.get('version')} -> "
            f"{record.details['color']} {record.details['version']} "
            f"(commit {str(record.details['commit'])[:8]})",
            flush=True,
        )


async def drive(settings: Settings, maintained: list[str], sample: Path) -> dict[str, Any]:
    async with Bus(settings, Source("demo", "demo")) as bus:
        await wait_for_maintainers(bus, maintained)
        with git.Repo(sample.parent) as repo:
            base = repo.head.commit.hexsha
        config = json.loads((sample / "context" / "agent-config.json").read_text())
        seed = BlueGreenDeployer(
            bus, component_dir=sample, service=config["service"], settings=settings
        )
        how = (
            f"containers of an image built for {base[:8]}, on {settings.deploy_network}"
            if settings.deploy_backend == "docker"
            else f"processes from a worktree at {base[:8]}"
        )
        say(f"deploying {SAMPLE} 1.0.0 (blue/green: {how})")
        running = await seed.deploy(SAMPLE, base, "1.0.0")
        print(f"{SAMPLE} 1.0.0 is live as {running.color}; sample.greet says {await greet(bus)}")

        records: list[MaintainerDecision] = []
        changed = asyncio.Event()

        async def on_decision(msg: Msg) -> None:
            record = MaintainerDecision.model_validate_json(msg.data)
            records.append(record)
            show(record)
            changed.set()

        await bus.subscribe_raw(decision_subject(None), on_decision)

        say("three broadcasts; every maintainer decides for its own component, in parallel")
        event_ids = []
        for title, interface, message in EVENTS_TO_SEND:
            print(f"-> {title}", flush=True)
            metadata = bus.metadata(interface)
            await bus.publish(interface, message, metadata=metadata)
            event_ids.append(metadata.message_id)
            if interface is DEPENDENCY_UPDATED:  # let the sample start on the patch first
                while not any(
                    r.event_id == metadata.message_id and r.component == SAMPLE for r in records
                ):
                    changed.clear()
                    await asyncio.wait_for(changed.wait(), 60)

        def finished() -> bool:
            """Every maintainer decided every event, and each change the sample's maintainer
            acted on has its last record (a deployment it started has ended)."""
            first = {(r.component, r.event_id) for r in records if r.event_id in event_ids}
            mine = [r for r in records if r.component == SAMPLE]
            acting = {r.event_id for r in mine if r.outcome == "acting"}
            ended = {r.event_id for r in mine if r.outcome in ENDED}
            decided = len(first) >= len(maintained) * len(event_ids)
            return decided and len(acting) >= 2 and acting <= ended

        deadline = time.monotonic() + 180
        while not finished():
            if time.monotonic() > deadline:
                raise SystemExit("the maintainers did not finish within 180 s")
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), 5)
            except TimeoutError:
                continue
        record = await current_deployment(bus, SAMPLE)
        deployment = record.model_dump(mode="json") if record is not None else None
        print(f"\nsample.greet now says {await greet(bus)}")
        # The deployed processes outlive the cluster (as deployments do): stop them here.
        for slot in (deployment or {}, (deployment or {}).get("previous") or {}):
            if slot.get("runtime"):
                await seed.backend.stop(slot["runtime"], component=SAMPLE, grace=5)
        await seed.backend.stop_started(grace=5)
        if isinstance(seed.backend, DockerBackend):
            removed = await seed.backend.remove_images(SAMPLE)
            print(f"removed the sample's images: {', '.join(sorted(removed))}")
        return {"records": records, "deployment": deployment, "event_ids": event_ids}


def summary(result: dict[str, Any], maintained: list[str]) -> None:
    records: list[MaintainerDecision] = result["records"]
    say("summary")
    first = [r for r in records if r.event_id in result["event_ids"]]
    by_component: dict[str, list[str]] = {}
    for record in first:
        by_component.setdefault(record.component, []).append(f"{record.action}/{record.outcome}")
    for name in maintained:
        print(f"  {name:<16} {', '.join(by_component.get(name, []))}")
    deployment = result["deployment"] or {}
    previous = deployment.get("previous") or {}
    print(
        f"\n  {SAMPLE} deployment: {deployment.get('color')} {deployment.get('version')} "
        f"(commit {str(deployment.get('commit'))[:8]}), previous {previous.get('color')} "
        f"{previous.get('version')}"
    )
    promoted = [r for r in records if r.component == SAMPLE and r.outcome == "promoted"]
    escalated = [r for r in first if r.action == "escalate"]
    print(f"  promoted changes of {SAMPLE}: {len(promoted)}; escalations: {len(escalated)}")
    if not any("greetlib" in r.summary for r in promoted):
        raise SystemExit("the patch update was not promoted")
    if not any(r.component == SAMPLE and "model.catalog" in r.summary for r in escalated):
        raise SystemExit("the breaking change was not escalated")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    return state != "Z"


def main() -> None:
    external = os.environ.get("AGENTBUS_NATS_URL", "").strip() or None
    with tempfile.TemporaryDirectory(prefix="agentbus-maintainers-") as scratch_dir:
        scratch = Path(scratch_dir)
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
        env["AGENTBUS_DATA_DIR"] = str(scratch / "agentbus")
        env.update(uv_environment(wheel_folder(scratch / "wheels")))
        deploy = compose_deploy_environment(external) if external else {}
        env.update(deploy)
        if deploy and (stale := sample_containers(remove=True)):
            print(f"removed containers an interrupted demo left behind: {', '.join(stale)}")
        sample = sample_repository(scratch / "sample-repo", name=SAMPLE)
        path, maintained = cluster_file(scratch, sample, external)
        if external:
            say(f"joining the cluster at {redact_url(external)}")
            joining_keys(scratch / "agentbus")
            agentbus("status", "--wait", "1.5", env=env)
            say(f"agentbus up: the maintainer of {SAMPLE}, here")
        else:
            # Its own cluster admits only the identities `agentbus up` makes for it (under the
            # data folder); this script and the CLI are its operator. Keys set for another
            # cluster would be refused there.
            for name in (*OWN_CREDENTIALS, "AGENTBUS_NATS_URL"):
                env.pop(name, None)
                os.environ.pop(name, None)
            say(
                f"agentbus up: services and {len(maintained)} maintainers on embedded NATS, "
                "each with its own identity and grants"
            )
        print(f"scratch git copy of the sample component: {sample}")
        up = subprocess.Popen([*AGENTBUS, "up", "-f", str(path)], env=env)
        result: dict[str, Any] = {}
        try:
            url = external or wait_for_url_file(scratch / "agentbus" / "nats.url")
            values: dict[str, Any] = {
                k.removeprefix("AGENTBUS_").lower(): v for k, v in deploy.items()
            }
            settings = Settings(nats_url=url, data_dir=scratch / "agentbus", **values)
            if external:
                maintained = [*asyncio.run(cluster_maintainers(settings)), *maintained]
                print(f"maintainers in the cluster: {', '.join(maintained)}")
            os.environ.update(uv_environment(scratch / "wheels"))
            result = asyncio.run(drive(settings, maintained, sample))
            summary(result, maintained)
            say("the same, through the CLI")
            agentbus("decisions", "--component", SAMPLE, env=env)
            agentbus("escalations", "list", env=env)
        except (BusError, KeyboardInterrupt):
            raise
        finally:
            say("Ctrl-C: services stop first, NATS last" if not external else "Ctrl-C")
            up.send_signal(signal.SIGINT)
            code = up.wait(60)
            print(f"agentbus up exited with {code}")
        deployment = result["deployment"] or {}
        deployed = [
            pid
            for slot in (deployment, deployment.get("previous") or {})
            for pid in (slot.get("runtime") or {}).get("pids", [])
        ]
        left: list[object] = [pid for pid in [up.pid, *deployed] if alive(pid)]
        if deploy:
            left += sample_containers()
        if left:
            raise SystemExit(f"processes or containers left behind: {left}")
        log = json.dumps({"maintainers": maintained})
        print(f"done: {log}")


def wait_for_url_file(path: Path, timeout: float = 30.0) -> str:
    """The embedded server's URL, once ``agentbus up`` has written it."""
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise SystemExit(f"agentbus up did not start NATS within {timeout:.0f} s")
        time.sleep(0.1)
    return path.read_text().strip()


if __name__ == "__main__":
    main()
