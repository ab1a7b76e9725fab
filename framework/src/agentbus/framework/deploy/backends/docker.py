"""A blue/green backend that runs each version as containers (Docker SDK for Python).

For a release, :class:`DockerBackend` builds an image for the candidate commit: the
commit's files (``git archive``) on top of a runtime image that holds the framework
and the dependencies (``agentbus/agentbus`` by default), with the commit's
``python_paths`` first on ``PYTHONPATH`` (what :class:`LocalBackend` does with a
worktree), then the release's ``site`` (its own installed dependencies, copied in).
It then runs ``agentbus serve <target> --instance <id>`` containers, one per
replica, named after their instance ids, on the cluster's network. The image is
built once per commit (tag ``<image_repo>:<component>-<sha12>``); a rollback that
restarts a stopped version reuses it. Needs the ``docker`` extra
(``pip install agentbus-framework[docker]``).

A ``runtime`` read back from the deployments record is untrusted: :meth:`DockerBackend.stop`
stops only containers that carry this backend's label with the component as its value,
and checks every one of them before it stops the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import posixpath
import re
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentbus.framework.auth.keys import read_seed
from agentbus.framework.auth.store import AuthFolder
from agentbus.framework.deploy.backends.base import Backend, Release, Running
from agentbus.framework.deploy.state import Color, shown, tampered
from agentbus.framework.errors import ConfigError, DeployError

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

LABEL = "io.agentbus.deploy"
"""Label on every image and container this backend makes (value: the component)."""


IGNORED = "Dockerfile\n.dockerignore\n"

CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A container id (what ``start`` records) or a container name."""


KEY_PATH = "/run/agentbus/key.nk"
"""Where a container's key is (as in docker-compose.yml's services)."""
APP_UID = 10001
"""The image's user (deploy/Dockerfile), who alone may read the key."""


def _key(seed: bytes) -> bytes:
    """A tar of ``agentbus/key.nk`` (mode 0600, the image's user) for ``put_archive``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(posixpath.basename(posixpath.dirname(KEY_PATH)))
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, APP_UID, APP_UID
        tar.addfile(folder)
        data = seed + b"\n"
        entry = tarfile.TarInfo(f"{folder.name}/{posixpath.basename(KEY_PATH)}")
        entry.size, entry.mode, entry.uid, entry.gid = len(data), 0o600, APP_UID, APP_UID
        tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def _archive(repo: Path, commit: str, dockerfile: str, site: Path | None = None) -> bytes:
    """A tar build context: ``Dockerfile``, the commit's tree under ``release/`` and the
    ``site`` folder (when given) under ``site/``."""
    try:
        tree = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", commit],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DeployError("git is not installed; the docker backend needs it") from exc
    if tree.returncode != 0:
        raise DeployError(f"git archive {commit} failed in {repo}: {tree.stderr.decode().strip()}")
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tree.stdout), mode="r") as source,
        tarfile.open(fileobj=out, mode="w") as context,
    ):
        for member in source.getmembers():
            content = source.extractfile(member) if member.isfile() else None
            member.name = f"release/{member.name}"
            if member.islnk():  # hard links name their target by its path in the archive
                member.linkname = f"release/{member.linkname}"
            context.addfile(member, content)
        if site is not None:
            context.add(site.resolve(), arcname="site")
        # The builder leaves out of the context what .dockerignore names: the build files.
        for name, text in (("Dockerfile", dockerfile), (".dockerignore", IGNORED)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            context.addfile(info, io.BytesIO(data))
    return out.getvalue()


class DockerBackend(Backend):
    """Runs versions as containers of an image built for each commit."""

    def __init__(
        self,
        repo: Path,
        *,
        nats_url: str,
        runtime_image: str = "agentbus/agentbus:latest",
        image_repo: str = "agentbus/release",
        network: str | None = None,
        python_paths: Sequence[str] = (".",),
        env: Mapping[str, str] | None = None,
        client: DockerClient | None = None,
        keys: AuthFolder | None = None,
    ) -> None:
        """``nats_url`` as the containers reach it (e.g. ``nats://nats:4222`` on ``network``);
        ``python_paths`` are relative to the checkout, as for :class:`LocalBackend`; a
        component with a key in ``keys`` (``<component>.nk``) runs as that identity: the key
        is copied into each container before it starts (never an argument or a variable)."""
        if ":" in image_repo.rsplit("/", 1)[-1]:
            raise ConfigError(f"image_repo {image_repo!r} must not have a tag; tags are commits")
        self.repo = repo.resolve()
        self.nats_url = nats_url
        self.runtime_image = runtime_image
        self.image_repo = image_repo
        self.network = network
        self.python_paths = tuple(python_paths)
        self.env = dict(env or {})
        self._client = client
        self._keys = keys
        self._started: list[str] = []

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            try:
                import docker
            except ImportError as exc:
                raise ConfigError(
                    "the docker backend needs the Docker SDK: "
                    "pip install 'agentbus-framework[docker]'"
                ) from exc
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise DeployError(f"no Docker engine answers: {exc}") from exc
        return self._client

    def image_tag(self, component: str, commit: str) -> str:
        return f"{self.image_repo}:{component}-{commit[:12]}"

    async def start(self, release: Release, color: Color) -> Running:
        commit = await asyncio.to_thread(self._resolve, release.commit)
        image = await asyncio.to_thread(self._ensure_image, release.component, commit, release.site)
        name = f"{release.component}-{color}-{commit[:12]}"
        instances = tuple(f"{name}-{i}" for i in range(release.replicas))
        containers: list[str] = []
        try:
            for instance in instances:  # one by one: on a failure, those started are stopped
                started = await asyncio.to_thread(
                    self._run, release, color, instance, image, commit
                )
                containers.append(started)
                self._started.append(started)
        except DeployError:
            await self.stop({"containers": containers}, component=release.component, grace=0)
            raise
        runtime = {
            "backend": "docker",
            "image": image,
            "containers": containers,
            "instances": list(instances),
        }
        return Running(release, color, commit, instances, runtime)

    def _resolve(self, ref: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.repo), "rev-parse", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DeployError(f"git rev-parse {ref} failed in {self.repo}: {done.stderr.strip()}")
        return done.stdout.strip()

    def _ensure_image(self, component: str, commit: str, site: Path | None) -> str:
        import docker.errors

        tag = self.image_tag(component, commit)
        try:
            self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            pass
        else:
            return tag
        paths = [posixpath.normpath(f"/srv/release/{p}") for p in self.python_paths]
        if site is not None and not site.is_dir():
            raise DeployError(f"the release's site {site} is not a folder")
        # As few instructions as possible: each is a container commit, seconds apiece on a
        # slow storage driver. The working directory is set when a container starts.
        dockerfile = (
            f"FROM {self.runtime_image}\n"
            f"LABEL {LABEL}={component} io.agentbus.commit={commit}\n"
            "COPY . /srv/\n"
            f"ENV PYTHONPATH={':'.join([*paths, *(['/srv/site'] if site else [])])}\n"
        )
        context = _archive(self.repo, commit, dockerfile, site)
        try:
            self.client.images.build(
                fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, pull=False
            )
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise DeployError(f"cannot build {tag} from {self.runtime_image}: {exc}") from exc
        return tag

    def _run(self, release: Release, color: Color, instance: str, image: str, commit: str) -> str:
        import docker.errors

        environment = {
            **self.env,
            **release.env,
            "AGENTBUS_NATS_URL": self.nats_url,
            "AGENTBUS_INSTANCE": instance,
            "AGENTBUS_DEPLOY_COMPONENT": release.component,
            "AGENTBUS_DEPLOY_COLOR": color,
        }
        seed = self._seed(release.component)
        if seed is not None:
            environment |= {
                "AGENTBUS_NATS_NKEY_FILE": KEY_PATH,
                "AGENTBUS_IDENTITY": release.component,
            }
        try:
            container = self.client.containers.create(
                image,
                command=["serve", release.target, "--instance", instance],
                name=instance,
                hostname=instance,
                environment=environment,
                network=self.network,
                working_dir="/srv/release",
                labels={
                    LABEL: release.component,
                    "io.agentbus.color": color,
                    "io.agentbus.commit": commit,
                },
            )
            if seed is not None:
                container.put_archive(posixpath.dirname(posixpath.dirname(KEY_PATH)), _key(seed))
            container.start()
        except docker.errors.APIError as exc:
            raise DeployError(f"cannot start container {instance} from {image}: {exc}") from exc
        container_id: str = container.id or instance
        return container_id

    def _seed(self, component: str) -> bytes | None:
        """The component's own key, when the cluster gave it one (``read_seed`` refuses a
        seed file others may read)."""
        seed_file = self._keys.seed_file(component) if self._keys is not None else None
        return read_seed(seed_file) if seed_file is not None and seed_file.is_file() else None

    def check_runtime(self, runtime: Mapping[str, Any], *, component: str) -> None:
        self._containers(runtime, component)

    def _containers(self, runtime: Mapping[str, Any], component: str) -> list[str]:
        """The runtime's container ids, once its shape is what ``start`` writes."""
        backend = runtime.get("backend", "docker")
        if backend != "docker":
            raise DeployError(
                f"the version of {component} to stop ran on the {shown(backend)} "
                "backend, not on this docker one: pass --backend local (or check `agentbus "
                f"deploy status {component}`)"
            )
        containers = runtime.get("containers", [])
        if not isinstance(containers, list | tuple) or not all(
            isinstance(c, str) and CONTAINER_ID.fullmatch(c) for c in containers
        ):
            raise tampered(component, f"stop {shown(containers)}: not container ids")
        return list(containers)

    def where_logs(self, running: Running, instance: str) -> str:
        containers = running.runtime.get("containers", [])
        instances = list(running.instances)
        if instance in instances and instances.index(instance) < len(containers):
            return f"`docker logs {str(containers[instances.index(instance)])[:12]}`"
        return ""

    async def alive(self, runtime: Mapping[str, Any], *, component: str) -> bool:
        return await asyncio.to_thread(self._alive, self._containers(runtime, component))

    def _alive(self, containers: list[str]) -> bool:
        import docker.errors

        for container_id in containers:
            try:
                container = self.client.containers.get(container_id)
            except docker.errors.NotFound:
                return False
            if container.status != "running":
                return False
        return True

    async def stop(
        self, runtime: Mapping[str, Any], *, component: str, grace: float = 10.0
    ) -> None:
        """SIGTERM (the service drains), SIGKILL after ``grace`` seconds, then remove; only
        containers labelled ``io.agentbus.deploy=<component>``, all checked before any stops."""
        ids = self._containers(runtime, component)
        found = await asyncio.to_thread(self._ours, ids, component)
        await asyncio.gather(*(asyncio.to_thread(self._stop, c, grace) for c in found))

    def _ours(self, ids: list[str], component: str) -> list[Container]:
        """The containers of ``ids`` that still exist; :class:`DeployError` if one of them
        is not a container this backend made for ``component``."""
        import docker.errors

        found = []
        for container_id in ids:
            try:
                container = self.client.containers.get(container_id)
            except docker.errors.NotFound:
                continue
            label = (container.labels or {}).get(LABEL)
            if label != component:
                raise tampered(
                    component,
                    f"stop container {container_id[:64]}: its {LABEL} label is "
                    f"{shown(label)}, not {component!r}",
                )
            found.append(container)
        return found

    async def stop_started(self, *, grace: float = 10.0) -> None:
        started, self._started = self._started, []
        found = await asyncio.to_thread(self._existing, started)
        await asyncio.gather(*(asyncio.to_thread(self._stop, c, grace) for c in found))

    def _existing(self, ids: list[str]) -> list[Container]:
        import docker.errors

        found = []
        for container_id in ids:
            with contextlib.suppress(docker.errors.NotFound):
                found.append(self.client.containers.get(container_id))
        return found

    async def remove_images(self, component: str) -> list[str]:
        """Remove the images built for ``component`` that no container uses; their tags."""
        return await asyncio.to_thread(self._remove_images, component)

    def _remove_images(self, component: str) -> list[str]:
        import docker.errors

        used = {
            c.image.id
            for c in self.client.containers.list(
                all=True, filters={"label": f"{LABEL}={component}"}
            )
            if c.image is not None
        }
        removed: list[str] = []
        for image in self.client.images.list(filters={"label": f"{LABEL}={component}"}):
            if image.id is None or image.id in used:
                continue
            try:
                self.client.images.remove(image.id, force=False)
            except docker.errors.APIError:
                continue  # in use by a container of another label, or removed meanwhile
            removed.extend(image.tags)
        return removed

    def _stop(self, container: Container, grace: float) -> None:
        import docker.errors

        container_id = container.id or container.name or "?"
        try:
            container.stop(timeout=max(0, round(grace)))
            container.remove(force=True, v=True)  # with its anonymous volumes
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise DeployError(f"cannot stop container {container_id[:12]}: {exc}") from exc


__all__ = ["DockerBackend"]
