"""The service runtime on NATS: services, the bus client, embedded NATS, metrics, discovery.

Depends on ``agentbus.interfaces`` only; components depend on this. Components import
the framework from here (and from the public sub-packages ``agentbus.framework.cli``,
``agentbus.framework.deploy`` and ``agentbus.framework.testing``), never from the
modules behind them.
"""

from agentbus.framework.bus import Bus, resolve_nats_url
from agentbus.framework.chunk_stream import ChunkStream
from agentbus.framework.config import Settings, load_toml, redact_url
from agentbus.framework.context import MessageContext
from agentbus.framework.declarations import handles, streams, subscribes
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.errors import (
    BusError,
    ConfigError,
    DeployError,
    DeploymentConflict,
    FrameworkError,
    NoRespondersError,
    NotConnectedError,
    PermissionDeniedError,
    RemoteError,
    RequestTimeoutError,
    ServiceError,
)
from agentbus.framework.events import EventHandler, EventSubscription
from agentbus.framework.ids import by_prefix
from agentbus.framework.jetstream import (
    AUDIT,
    DAY,
    DEAD_LETTER,
    DEPLOYMENTS_BUCKET,
    ESCALATIONS,
    EVENTS,
    StreamSpec,
    declare_all,
    declare_stream,
    key_value,
)
from agentbus.framework.metrics import LATENCY_BUCKETS
from agentbus.framework.runner import load_service, run, serve
from agentbus.framework.service import Service
from agentbus.framework.wire import error_from, to_json

__all__ = [
    "AUDIT",
    "DAY",
    "DEAD_LETTER",
    "DEPLOYMENTS_BUCKET",
    "ESCALATIONS",
    "EVENTS",
    "LATENCY_BUCKETS",
    "Bus",
    "BusError",
    "ChunkStream",
    "ConfigError",
    "DeployError",
    "DeploymentConflict",
    "EmbeddedNats",
    "EventHandler",
    "EventSubscription",
    "FrameworkError",
    "MessageContext",
    "NoRespondersError",
    "NotConnectedError",
    "PermissionDeniedError",
    "RemoteError",
    "RequestTimeoutError",
    "Service",
    "ServiceError",
    "Settings",
    "StreamSpec",
    "by_prefix",
    "declare_all",
    "declare_stream",
    "error_from",
    "handles",
    "key_value",
    "load_service",
    "load_toml",
    "redact_url",
    "resolve_nats_url",
    "run",
    "serve",
    "streams",
    "subscribes",
    "to_json",
]
