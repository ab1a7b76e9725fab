"""Prometheus accounting per alias, provider and calling component.

Registered on the service's own registry, so they are served on its metrics
port next to the framework's request metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from agentbus.framework import LATENCY_BUCKETS
from agentbus.interfaces.catalog.model import Usage

_LABELS = ["alias", "provider", "caller"]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "agentbus_model_requests",
            "Model calls per alias tried (a fallback counts for each alias it reaches)",
            [*_LABELS, "operation"],
            registry=registry,
        )
        self.errors = Counter(
            "agentbus_model_errors",
            "Failed model calls, by kind (rate_limited, server, timeout, connection, "
            "bad_request, auth, malformed)",
            [*_LABELS, "kind"],
            registry=registry,
        )
        self.tokens = Counter(
            "agentbus_model_tokens",
            "Tokens, by direction (in: prompt, out: completion)",
            [*_LABELS, "direction"],
            registry=registry,
        )
        self.latency = Histogram(
            "agentbus_model_duration_seconds",
            "Time of a successful model call, retries included",
            [*_LABELS, "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_chunk = Histogram(
            "agentbus_model_first_chunk_seconds",
            "Time to the first chunk of a stream",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "agentbus_model_retries",
            "Provider calls retried, by error kind",
            ["provider", "kind"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "agentbus_model_fallbacks",
            "Requests passed on to the next alias of a fallback chain",
            ["alias", "to"],
            registry=registry,
        )

    def succeeded(
        self, alias: str, provider: str, caller: str, operation: str, seconds: float, usage: Usage
    ) -> None:
        self.latency.labels(alias, provider, caller, operation).observe(seconds)
        self.tokens.labels(alias, provider, caller, "in").inc(usage.input_tokens)
        self.tokens.labels(alias, provider, caller, "out").inc(usage.output_tokens)
