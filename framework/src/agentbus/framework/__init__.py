"""The service runtime on NATS: services, the bus client, embedded NATS, metrics, discovery.

Depends on ``agentbus.interfaces`` only; components depend on this.
"""

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings, load_toml
from agentbus.framework.context import MessageContext
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.errors import (
    BusError,
    ConfigError,
    FrameworkError,
    NoRespondersError,
    NotConnectedError,
    RemoteError,
    RequestTimeoutError,
    ServiceError,
)
from agentbus.framework.runner import load_service, run, serve
from agentbus.framework.service import Service, handles, streams, subscribes
from agentbus.framework.streaming import ChunkStream

__all__ = [
    "Bus",
    "BusError",
    "ChunkStream",
    "ConfigError",
    "EmbeddedNats",
    "FrameworkError",
    "MessageContext",
    "NoRespondersError",
    "NotConnectedError",
    "RemoteError",
    "RequestTimeoutError",
    "Service",
    "ServiceError",
    "Settings",
    "handles",
    "load_service",
    "load_toml",
    "run",
    "serve",
    "streams",
    "subscribes",
]
