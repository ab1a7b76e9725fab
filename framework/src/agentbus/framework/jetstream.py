"""JetStream resources agentbus relies on, declared idempotently at start-up.

Every service declares them all: whichever starts first creates them, the
others find them in place. A stream that exists with other settings is updated
to ours (subjects are merged, never dropped). Replicas come from the bus's
:class:`ReplicatedJetStream` (``Settings.js_replicas``): a stream or bucket with fewer
is upgraded in place (R1 to R3 when a single server grows into a cluster) by a
context that may (``upgrade``: the operator, ``agentbus js upgrade``; a service's
identity may create streams but not change them), one with more is left as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from agentbus.framework.errors import ConfigError
from agentbus.interfaces import subjects

log = logging.getLogger("agentbus.jetstream")

DAY = 24 * 3600.0
UPGRADE_WAIT = 15.0
"""Seconds an upgrade waits for the new replicas to catch up before it returns."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age: float = 30 * DAY
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    duplicate_window: float = 120.0


EVENTS = StreamSpec(
    "AGENTBUS_EVENTS", (subjects.events_wildcard(),), "Events broadcast between components"
)
ESCALATIONS = StreamSpec(
    "AGENTBUS_ESCALATIONS", (f"{subjects.ESCALATIONS}.>",), "Requests for a human or managing AI"
)
AUDIT = StreamSpec("AGENTBUS_AUDIT", (f"{subjects.AUDIT}.>",), "Decisions and executions")
DEAD_LETTER = StreamSpec(
    "AGENTBUS_DEADLETTER", (f"{subjects.DEAD_LETTER}.>",), "Events that kept failing"
)
STREAMS = (EVENTS, ESCALATIONS, AUDIT, DEAD_LETTER)

CONFIG_BUCKET = "agentbus_config"
"""Per-service configuration; a put on key ``<service>`` reaches its ``on_config_change``."""
DEPLOYMENTS_BUCKET = "agentbus_deployments"
"""Blue/green: key ``<component>`` holds the active version and color (see ``deploy/state.py``)."""
KV_BUCKETS = (CONFIG_BUCKET, DEPLOYMENTS_BUCKET)
KV_STREAM_PREFIX = "KV_"
"""A KV bucket is the stream ``KV_<bucket>``."""


class ReplicatedJetStream(JetStreamContext):
    """A JetStream context that knows how many replicas the resources declared through it
    get (:attr:`replicas`) and whether it may raise an existing one's (:attr:`upgrade`);
    ``Bus.js`` hands these out."""

    def __init__(self, conn: Client, *, replicas: int = 1, upgrade: bool = False) -> None:
        super().__init__(conn)
        self.replicas = replicas
        self.upgrade = upgrade


def replicas_of(js: JetStreamContext) -> int:
    return js.replicas if isinstance(js, ReplicatedJetStream) else 1


def _refused_replicas(exc: APIError, name: str, replicas: int) -> ConfigError:
    return ConfigError(
        f"NATS refused {replicas} replicas for {name}: {exc.description or exc}; the servers "
        f"must be a JetStream cluster of at least {replicas} nodes: connect to such a cluster, "
        "or set AGENTBUS_JS_REPLICAS to the number of nodes (1 for a single server)"
    )


async def upgrade_replicas(
    js: JetStreamContext, info: StreamInfo, replicas: int
) -> StreamInfo | None:
    """Raise the stream's replica count to ``replicas`` when it has fewer (never lowers it)."""
    config = info.config
    if (config.num_replicas or 1) >= replicas:
        return None
    if not (isinstance(js, ReplicatedJetStream) and js.upgrade):
        log.warning(
            "stream %s has %d replica(s), fewer than the %d asked for: run `agentbus js "
            "upgrade` (the operator may change streams, services may not)",
            config.name,
            config.num_replicas or 1,
            replicas,
        )
        return None
    config.num_replicas = replicas
    try:
        await js.update_stream(config)
    except APIError as exc:
        raise _refused_replicas(exc, config.name or "?", replicas) from None
    return await _settled(js, config.name or "?", replicas)


async def _settled(js: JetStreamContext, name: str, replicas: int) -> StreamInfo:
    """The stream's info once it has a leader and every new replica has caught up (writes
    pause while the bigger group elects its leader), or after :data:`UPGRADE_WAIT`."""
    deadline = time.monotonic() + UPGRADE_WAIT
    while True:
        info = await js.stream_info(name)
        peers = info.cluster.replicas or [] if info.cluster is not None else []
        settled = info.cluster is not None and info.cluster.leader is not None
        if settled and len(peers) == replicas - 1 and all(p.current for p in peers):
            return info
        if time.monotonic() >= deadline:
            log.warning("stream %s: its %d replicas have not caught up yet", name, replicas)
            return info
        await asyncio.sleep(0.1)


async def declare_stream(
    js: JetStreamContext, spec: StreamSpec, storage: Literal["file", "memory"]
) -> None:
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=spec.retention,
        max_age=spec.max_age,
        storage=StorageType.FILE if storage == "file" else StorageType.MEMORY,
        duplicate_window=spec.duplicate_window,
        num_replicas=replicas_of(js),
    )
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except APIError as exc:  # another service created it in between, or refused
            try:
                info = await js.stream_info(spec.name)
            except NotFoundError:
                if (config.num_replicas or 1) == 1:
                    raise exc from None
                raise _refused_replicas(exc, spec.name, config.num_replicas or 1) from None
        else:
            return
    upgraded = await upgrade_replicas(js, info, config.num_replicas or 1)
    info = upgraded or info
    config.num_replicas = info.config.num_replicas
    merged = sorted(set(info.config.subjects or ()) | set(spec.subjects))
    if merged != sorted(info.config.subjects or ()) or info.config.description != spec.description:
        config.subjects = merged
        config.storage = info.config.storage  # storage cannot change in place
        await js.update_stream(config)


async def key_value(js: JetStreamContext, bucket: str, *, history: int = 5) -> KeyValue:
    """Open a KV bucket, creating it when missing, with the context's replicas (a bucket
    with fewer is upgraded)."""
    replicas = replicas_of(js)
    try:
        info = await js.stream_info(KV_STREAM_PREFIX + bucket)
    except NotFoundError:
        config = KeyValueConfig(bucket=bucket, history=history, replicas=replicas)
        try:
            return await js.create_key_value(config)
        except APIError as exc:  # another service created it in between, or refused
            try:
                return await js.key_value(bucket)
            except (BucketNotFoundError, NotFoundError):
                if replicas == 1:
                    raise exc from None
                raise _refused_replicas(exc, f"KV bucket {bucket}", replicas) from None
    await upgrade_replicas(js, info, replicas)
    return await js.key_value(bucket)


async def declare_all(js: JetStreamContext, storage: Literal["file", "memory"] = "file") -> None:
    for spec in STREAMS:
        await declare_stream(js, spec, storage)
    for bucket in KV_BUCKETS:
        await key_value(js, bucket)
