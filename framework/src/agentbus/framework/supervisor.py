"""``agentbus up``: embedded NATS plus the services of a cluster file, supervised.

A cluster file (``agentbus.toml``)::

    [nats]
    url = ""             # empty: start an embedded nats-server
    port = 4222          # the embedded server's port (0: any free port)
    cluster = 1          # 3: three embedded servers routed into a JetStream cluster

    [[service]]
    name = "hello"
    target = "hello_service:HelloService"   # module:Class
    replicas = 2
    env = { HELLO_GREETING = "Hi" }         # set for this service (values may use ${VAR})
    pass_env = ["OPENAI_API_KEY"]           # also given from `agentbus up`'s environment

Each replica gets only what it needs, never the whole environment of ``agentbus up``
(:func:`service_environment`): the base (:data:`BASE_VARIABLES`, every ``AGENTBUS_*``
setting, which includes the bus credentials the service connects with, and the
tool settings of :data:`BASE_PREFIXES` without credential-looking names), then the
NATS URL, data folder and instance id, the file's ``[agentbus]`` settings, the
variables its ``pass_env`` names (provider keys: only the services that call
providers list them) and its ``env`` table.

Each replica runs as ``python -m agentbus.framework.cli serve <target>`` in its
own session (a terminal Ctrl-C reaches only the supervisor, which stops
children in order: services first, then the versions its maintainers deployed with
the local backend (noted under ``<data dir>/deploy/live``), NATS last) and, on Linux,
dies with the supervisor. A replica that exits is restarted with exponential backoff, and
so is the embedded nats-server (same port and store), or each node of an embedded cluster
(``cluster = 3`` or ``agentbus up --nats-cluster 3``: services get every node's URL and
declare their streams and buckets with three replicas).
"""

from __future__ import annotations

import fnmatch
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentbus.framework.auth.store import AuthFolder, Identity
from agentbus.framework.config import load_toml, redact_url
from agentbus.framework.deploy.backends.local_runtime import stop_live_instances
from agentbus.framework.embedded import EmbeddedNats, _die_with_parent
from agentbus.framework.embedded_cluster import EmbeddedCluster
from agentbus.framework.errors import ConfigError, EmbeddedNatsError
from agentbus.interfaces.validation import explain


class NatsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = ""
    port: int = Field(default=4222, ge=0, le=65535)
    monitor_port: int | None = Field(default=None, ge=0, le=65535)
    cluster: int = Field(
        default=1,
        ge=1,
        le=7,
        description="Embedded nats-servers: 1, or 3 (5, 7) routed into a JetStream cluster "
        "on loopback (the nodes' client ports follow `port`).",
    )


BASE_VARIABLES = (
    *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG", "LANGUAGE"),
    *("TERM", "COLUMNS", "NO_COLOR", "FORCE_COLOR"),
    *("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"),
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("http_proxy", "https_proxy", "all_proxy", "no_proxy"),
    *("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"),
)
"""What every supervised service gets from ``agentbus up``'s environment, if it is set."""
BASE_PREFIXES = ("LC_", "UV_")
"""Locale, and uv's settings (maintainers run uv), minus :data:`CREDENTIAL_PATTERNS`."""
CREDENTIAL_PATTERNS = ("*TOKEN*", "*PASSWORD*", "*SECRET*", "*_API_KEY", "*CREDENTIAL*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ServiceSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    target: str = Field(description="module:Class of the Service subclass")
    replicas: int = Field(default=1, ge=1, le=64)
    env: dict[str, str] = Field(default_factory=dict)
    pass_env: list[str] = Field(
        default_factory=list,
        description="Variables of `agentbus up`'s environment this service also gets "
        "(provider keys, variables its config files use as ${VAR}); unset ones are skipped.",
    )

    @field_validator("pass_env")
    @classmethod
    def _variable_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name; list names such as "
                    "OPENAI_API_KEY (letters, digits, _)"
                )
        return names


def _credential_looking(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name.upper(), pattern) for pattern in CREDENTIAL_PATTERNS)


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` every service gets (see the module's docstring)."""
    return {
        name: value
        for name, value in environ.items()
        if name in BASE_VARIABLES
        or name.startswith("AGENTBUS_")
        or (name.startswith(BASE_PREFIXES) and not _credential_looking(name))
    }


def service_environment(
    service: ServiceSection, environ: Mapping[str, str], settings: Mapping[str, str]
) -> dict[str, str]:
    """The whole environment of one replica of ``service``: the base of ``environ``, then
    ``settings`` (the supervisor's AGENTBUS_* values), its ``pass_env`` names, its ``env``."""
    env = base_environment(environ) | dict(settings)
    env.update({name: environ[name] for name in service.pass_env if name in environ})
    env.update(service.env)
    return env


class ClusterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agentbus: dict[str, Any] = Field(default_factory=dict)
    nats: NatsSection = Field(default_factory=NatsSection)
    service: list[ServiceSection] = Field(default_factory=list)
    path: Path = Path("agentbus.toml")

    @classmethod
    def load(cls, path: Path) -> ClusterFile:
        data = load_toml(path)
        try:
            cluster = cls.model_validate({**data, "path": path})
        except ValidationError as exc:
            raise ConfigError(f"{path}: {explain(exc)}") from None
        names = [s.name for s in cluster.service]
        if len(names) != len(set(names)):
            raise ConfigError(f"{path}: service names must be unique, got {names}")
        return cluster


Log = Callable[[str], None]


@dataclass
class Replica:
    service: ServiceSection
    index: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0

    @property
    def instance(self) -> str:
        return f"{self.service.name}-{self.index}"


@dataclass
class NodeWatch:
    """The restart state of one embedded nats-server the supervisor runs."""

    server: EmbeddedNats
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0


@dataclass
class Supervisor:
    """Runs a cluster until :meth:`request_stop`; restarts replicas that exit."""

    cluster: ClusterFile
    data_dir: Path
    log: Log = print
    grace: float = 10.0
    replicas: list[Replica] = field(default_factory=list)
    identities: list[Identity] | None = None
    """The cluster's identities (``auth.cluster_identities``): written to the auth folder
    before the embedded server starts, which then admits only them. ``None``: an anonymous
    embedded server (tests of that very refusal). Not written for a server of the file's
    ``[nats] url``, whose own configuration decides who it admits: replicas then use the
    keys already in the auth folder, if any."""
    nats: EmbeddedNats | None = None
    """The embedded server (the first node of an embedded cluster)."""
    nats_cluster: EmbeddedCluster | None = None
    url: str = ""
    _stopping: bool = False
    _nodes: list[NodeWatch] = field(default_factory=list)

    @property
    def auth(self) -> AuthFolder:
        return AuthFolder.of(self.data_dir)

    def start(self) -> None:
        if self.identities is not None and not self.cluster.nats.url:
            made = self.auth.write(self.identities)
            fresh = f", new keys for {', '.join(made)}" if made else ""
            self.log(f"identities of {len(self.identities)} in {self.auth.path}{fresh}")
        if self.cluster.nats.url:
            self.url = self.cluster.nats.url
            self.log(f"using NATS at {redact_url(self.url)}")
        elif self.cluster.nats.cluster > 1:
            self._start_nats_cluster()
        else:
            self.nats = EmbeddedNats(
                self.data_dir,
                port=self.cluster.nats.port,
                monitor_port=self.cluster.nats.monitor_port,
                write_url_file=True,
                auth=self.auth.server_config if self.identities is not None else None,
            ).start()
            self.url = self.nats.url
            self._nodes = [NodeWatch(self.nats, started_at=time.monotonic())]
            admits = "only the cluster's identities" if self.nats.auth else "anyone"
            self.log(
                f"embedded nats-server with JetStream on {self.url} (data in {self.data_dir}; "
                f"admits {admits})"
            )
        for service in self.cluster.service:
            for index in range(service.replicas):
                replica = Replica(service, index)
                self.replicas.append(replica)
                self._spawn(replica)

    def _start_nats_cluster(self) -> None:
        """Start the embedded cluster and wait for its JetStream meta leader (services
        declare their streams as they start)."""
        size = self.cluster.nats.cluster
        auth = self.auth.server_config if self.identities is not None else None
        cluster = EmbeddedCluster(
            self.data_dir, size, port=self.cluster.nats.port, auth=auth, write_url_file=True
        )
        self.nats_cluster = cluster.start()
        self.nats = cluster.nodes[0]
        self.url = cluster.url
        now = time.monotonic()
        self._nodes = [NodeWatch(node, started_at=now) for node in cluster]
        admits = "only the cluster's identities" if auth else "anyone"
        self.log(
            f"embedded NATS cluster of {size} with JetStream on {self.url} (meta leader "
            f"{cluster.meta_leader()}; data in {self.data_dir / 'cluster'}; admits {admits})"
        )

    def _environment(self, replica: Replica) -> dict[str, str]:
        folder = str(self.cluster.path.resolve().parent)
        paths = (folder, os.environ.get("PYTHONPATH", ""))
        settings = {
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "AGENTBUS_NATS_URL": self.url,
            "AGENTBUS_DATA_DIR": str(self.data_dir.resolve()),
            "AGENTBUS_INSTANCE": replica.instance,
        }
        seed = self.auth.seed_file(replica.service.name)
        if seed.is_file():  # its own identity, whatever key `agentbus up` itself was given
            settings["AGENTBUS_NATS_NKEY_FILE"] = str(seed.resolve())
            settings["AGENTBUS_IDENTITY"] = replica.service.name
        for key, value in self.cluster.agentbus.items():
            name = f"AGENTBUS_{key.upper()}"
            if name not in os.environ:  # the environment wins over the file, as in Settings
                settings.setdefault(name, str(value))
        return service_environment(replica.service, os.environ, settings)

    def _spawn(self, replica: Replica) -> None:
        argv = [sys.executable, "-m", "agentbus.framework.cli", "serve", replica.service.target]
        replica.process = subprocess.Popen(
            argv,
            env=self._environment(replica),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        replica.started_at = time.monotonic()
        self.log(f"started {replica.instance} (pid {replica.process.pid})")

    def poll(self) -> None:
        """Restart replicas that exited, and the embedded nats-server; call periodically."""
        now = time.monotonic()
        self._watch_nats(now)
        for replica in self.replicas:
            process = replica.process
            if process is not None and process.poll() is not None:
                code = process.returncode
                replica.process = None
                if now - replica.started_at > 60:
                    replica.restarts = 0  # it ran well for a while: start the backoff afresh
                delay = min(30.0, 2.0**replica.restarts)
                replica.restarts += 1
                replica.next_start = now + delay
                self.log(f"{replica.instance} exited with code {code}; restarting in {delay:.0f}s")
            elif process is None and not self._stopping and now >= replica.next_start:
                self._spawn(replica)

    def _watch_nats(self, now: float) -> None:
        """Each embedded server is a child like any other: when it dies it is started again
        on the same port and JetStream store (same URL: services reconnect by themselves;
        a cluster node rejoins its routes and catches up), with the replicas' backoff; each
        step is logged."""
        if self._stopping:
            return
        for node in self._nodes:
            self._watch_node(node, now)

    def _watch_node(self, node: NodeWatch, now: float) -> None:
        nats = node.server
        name = f"nats-server {nats.cluster.name}" if nats.cluster else "nats-server"
        code = nats.exit_code
        if code is not None:
            if now - node.started_at > 60:
                node.restarts = 0
            delay = min(30.0, 0.5 * 2.0**node.restarts)
            node.restarts += 1
            node.next_start = now + delay
            nats.stop()  # forget the dead process (nothing to signal)
            self.log(
                f"{name} exited with code {code} (log: {nats.log_path}); restarting it "
                f"on {nats.url} in {delay:.1f}s, services reconnect"
            )
        elif not nats.running and now >= node.next_start:
            try:
                nats.start()
            except EmbeddedNatsError as exc:
                delay = min(30.0, 0.5 * 2.0**node.restarts)
                node.restarts += 1
                node.next_start = now + delay
                self.log(f"{name} did not start again: {exc}; next try in {delay:.1f}s")
                return
            node.started_at = now
            self.log(f"{name} is back on {nats.url} with its JetStream store")

    def request_stop(self) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Stop services (SIGTERM, then SIGKILL after the grace), then NATS."""
        self._stopping = True
        running = [r for r in self.replicas if r.process is not None and r.process.poll() is None]
        for replica in running:
            assert replica.process is not None
            replica.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        for replica in running:
            assert replica.process is not None
            try:
                replica.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"{replica.instance} did not stop in time; killing it")
                replica.process.kill()
                replica.process.wait()
            self.log(f"stopped {replica.instance}")
        for instance in stop_live_instances(self.data_dir.resolve(), self.grace):
            self.log(f"stopped deployed instance {instance}")
        if self.nats_cluster is not None:
            self.nats_cluster.stop()
            self.log(f"stopped the {len(self.nats_cluster.nodes)} nats-servers")
        elif self.nats is not None:
            self.nats.stop()
            self.log("stopped nats-server")

    def run(self, poll_interval: float = 0.2) -> None:
        """Start, supervise until SIGINT / SIGTERM, stop."""

        def on_signal(signum: int, _frame: object) -> None:
            if self._stopping:
                return
            self.log(f"{signal.Signals(signum).name}: stopping the cluster")
            self.request_stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            self.log("cluster up; Ctrl-C stops it")
            while not self._stopping:
                self.poll()
                time.sleep(poll_interval)
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
