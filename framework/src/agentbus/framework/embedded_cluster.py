"""Several embedded nats-servers on loopback, routed into one JetStream cluster.

``agentbus up --nats-cluster 3`` and the tests start one: node ``n<i>`` keeps its
log, config and JetStream store under ``<data_dir>/cluster/n<i>``, listens for
clients on its own port and for routes on another, and serves its monitoring
endpoint on a third (:meth:`EmbeddedCluster.wait_for_leader` reads ``/jsz`` there:
JetStream in a cluster answers only once its nodes have elected a meta leader).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from agentbus.framework.embedded import URL_FILE, ClusterRoutes, EmbeddedNats, free_port
from agentbus.framework.errors import EmbeddedNatsError

LEADER_TIMEOUT = 30.0


class EmbeddedCluster:
    """``size`` nodes (``port`` is the first node's client port, the next ones follow
    when it is set; 0: free ports)."""

    def __init__(
        self,
        data_dir: Path,
        size: int = 3,
        *,
        port: int = 0,
        auth: Path | None = None,
        write_url_file: bool = False,
    ) -> None:
        if size < 2:
            raise EmbeddedNatsError(f"a cluster needs at least 2 nodes, not {size}")
        self.data_dir = data_dir
        self.write_url_file = write_url_file
        route_ports = tuple(free_port() for _ in range(size))
        password = secrets.token_urlsafe(24)
        self.nodes = [
            EmbeddedNats(
                data_dir / "cluster" / f"n{index + 1}",
                port=port + index if port else 0,
                monitor_port=free_port(),
                auth=auth,
                cluster=ClusterRoutes(f"n{index + 1}", route_ports[index], route_ports, password),
            )
            for index in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's URL, separated by commas (what clients get as AGENTBUS_NATS_URL)."""
        return ",".join(node.url for node in self.nodes)

    def __iter__(self) -> Iterator[EmbeddedNats]:
        return iter(self.nodes)

    def start(self, timeout: float = LEADER_TIMEOUT) -> Self:
        """Start every node, then wait until JetStream has a meta leader."""
        try:
            for node in self.nodes:
                node.start()
            self.wait_for_leader(timeout)
        except BaseException:
            self.stop()
            raise
        if self.write_url_file:
            text = "\n".join(node.url for node in self.nodes) + "\n"
            (self.data_dir / URL_FILE).write_text(text, encoding="utf-8")
        return self

    def meta_leader(self) -> str | None:
        """The name of the JetStream meta leader, as a running node sees it, or None."""
        for node in self.nodes:
            if not node.running or node.monitor_port is None:
                continue
            jsz = _get_json(f"http://{node.host}:{node.monitor_port}/jsz")
            leader = ((jsz or {}).get("meta_cluster") or {}).get("leader")
            if leader:
                return str(leader)
        return None

    def wait_for_leader(self, timeout: float = LEADER_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            if leader is not None:
                return leader
            time.sleep(0.1)
        logs = ", ".join(str(node.log_path) for node in self.nodes)
        raise EmbeddedNatsError(
            f"the {len(self.nodes)} nats-servers elected no JetStream meta leader within "
            f"{timeout:.0f}s (are their route ports reachable?); see {logs}"
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.write_url_file:
            (self.data_dir / URL_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback
            document = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
