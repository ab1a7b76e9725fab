"""Prometheus metrics of one service, on its own registry and HTTP port.

Each service owns a ``CollectorRegistry`` (not the global one), so several
services in one process (tests, benchmarks, an embedding application) never collide.
Label children are bound once per endpoint: ``labels()`` is too slow for the
request path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip


@dataclass
class ServiceMetrics:
    """The standard metrics every agentbus service exports."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "agentbus_requests", "Requests received", ["service", "subject"], registry=r
        )
        self.errors = Counter(
            "agentbus_request_errors",
            "Requests answered with an error reply, by error code",
            ["service", "subject", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "agentbus_request_duration_seconds",
            "Time from receipt to reply",
            ["service", "subject"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "agentbus_requests_in_flight", "Requests being handled", ["service"], registry=r
        ).labels(self.service)
        """Set with ``track_in_flight``: read at scrape time, free on the request path."""
        self.queued = Gauge(
            "agentbus_requests_queued", "Requests waiting for a slot", ["service"], registry=r
        ).labels(self.service)
        self.dropped = Counter(
            "agentbus_requests_dropped",
            "Requests dropped unanswered because their caller's deadline passed before they "
            "got a slot (no handler ran)",
            ["service", "subject"],
            registry=r,
        )
        self.events = Counter(
            "agentbus_events",
            "Events handled, by outcome (ok, retried, dead_lettered)",
            ["service", "subject", "outcome"],
            registry=r,
        )
        self._server: Any = None

    def track_in_flight(self, count: Callable[[], int], queued: Callable[[], int]) -> None:
        self.in_flight.set_function(count)
        self.queued.set_function(queued)

    def endpoint(self, subject: str) -> EndpointMetrics:
        return EndpointMetrics(self, subject)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the ``/metrics`` HTTP server; returns the bound port (``port=0`` picks one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        bound: int = server.server_port
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class EndpointMetrics:
    """Pre-bound metric children for one subject."""

    __slots__ = ("_errors", "_owner", "_subject", "dropped", "latency", "requests")

    def __init__(self, owner: ServiceMetrics, subject: str) -> None:
        self._owner = owner
        self._subject = subject
        self._errors = owner.errors
        self.requests = owner.requests.labels(owner.service, subject)
        self.latency = owner.latency.labels(owner.service, subject)
        self.dropped = owner.dropped.labels(owner.service, subject)

    def error(self, code: str) -> None:
        self._errors.labels(self._owner.service, self._subject, code).inc()

    def event(self, outcome: str) -> None:
        self._owner.events.labels(self._owner.service, self._subject, outcome).inc()
