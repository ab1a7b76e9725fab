"""JetStream resources agentbus relies on, declared idempotently at start-up.

Every service declares them all: whichever starts first creates them, the
others find them in place. A stream that exists with other settings is updated
to ours (subjects are merged, never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from agentbus.interfaces import subjects

DAY = 24 * 3600.0


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
    )
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:  # another service created it in between
            info = await js.stream_info(spec.name)
        else:
            return
    merged = sorted(set(info.config.subjects or ()) | set(spec.subjects))
    if merged != sorted(info.config.subjects or ()) or info.config.description != spec.description:
        config.subjects = merged
        config.storage = info.config.storage  # storage cannot change in place
        await js.update_stream(config)


async def key_value(js: JetStreamContext, bucket: str, *, history: int = 5) -> KeyValue:
    """Open a KV bucket, creating it when missing."""
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        try:
            return await js.create_key_value(KeyValueConfig(bucket=bucket, history=history))
        except BadRequestError:
            return await js.key_value(bucket)


async def declare_all(js: JetStreamContext, storage: Literal["file", "memory"] = "file") -> None:
    for spec in STREAMS:
        await declare_stream(js, spec, storage)
    for bucket in KV_BUCKETS:
        await key_value(js, bucket)
