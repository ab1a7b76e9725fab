"""Discovery and health through the NATS service protocol (``$SRV.PING|INFO|STATS``).

The wire format is nats.py's ``nats.micro`` (its dataclasses and subject
builder), so ``nats micro ls`` and other NATS tooling see agentbus services.
The request path is ours (see :mod:`.endpoint`): micro's own endpoint counts an
error only when a handler raises and answers with an empty body, while every
agentbus error is a structured reply that must be counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
    ServiceVerb,
    control_subject,
)

from agentbus.framework.endpoint import Endpoint
from agentbus.interfaces.subjects import callers

PREFIX = "$SRV"


class Discovery:
    """Answers the service-protocol verbs for one service instance."""

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        instance: str,
        version: str,
        description: str,
        metadata: dict[str, str],
        endpoints: Sequence[Endpoint],
    ) -> None:
        self._client = client
        self.name = name
        self.instance = instance
        self.version = version
        self.description = description
        self.metadata = metadata
        self._endpoints = endpoints
        self.started = datetime.now(UTC)
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        handlers = {
            ServiceVerb.PING: self._on_ping,
            ServiceVerb.INFO: self._on_info,
            ServiceVerb.STATS: self._on_stats,
        }
        for verb, handler in handlers.items():
            for subject in (
                control_subject(verb, name=None, id=None, prefix=PREFIX),
                control_subject(verb, name=self.name, id=None, prefix=PREFIX),
                control_subject(verb, name=self.name, id=self.instance, prefix=PREFIX),
            ):
                self._subscriptions.append(await self._client.subscribe(subject, cb=handler))

    async def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.unsubscribe()

    def ping(self) -> ServicePing:
        return ServicePing(
            id=self.instance, name=self.name, version=self.version, metadata=self.metadata
        )

    def info(self) -> ServiceInfo:
        return ServiceInfo(
            name=self.name,
            id=self.instance,
            version=self.version,
            description=self.description,
            metadata=self.metadata,
            endpoints=[
                EndpointInfo(
                    name=e.name,
                    subject=callers(e.subject),
                    queue_group=e.queue,
                    metadata={
                        "interface": e.interface.name,
                        "interface_version": str(e.interface.version),
                    },
                )
                for e in self._endpoints
            ],
        )

    def stats(self) -> ServiceStats:
        return ServiceStats(
            name=self.name,
            id=self.instance,
            version=self.version,
            started=self.started.replace(tzinfo=None),
            metadata=self.metadata,
            endpoints=[
                EndpointStats(
                    name=e.name,
                    subject=callers(e.subject),
                    queue_group=e.queue,
                    num_requests=e.num_requests,
                    num_errors=e.num_errors,
                    processing_time=e.processing_time_ns,
                    average_processing_time=(
                        e.processing_time_ns // e.num_requests if e.num_requests else 0
                    ),
                    last_error=e.last_error,
                )
                for e in self._endpoints
            ],
        )

    async def _reply(self, msg: Msg, document: dict[str, Any]) -> None:
        if msg.reply:
            await self._client.publish(msg.reply, json.dumps(document).encode())

    async def _on_ping(self, msg: Msg) -> None:
        await self._reply(msg, self.ping().to_dict())

    async def _on_info(self, msg: Msg) -> None:
        await self._reply(msg, self.info().to_dict())

    async def _on_stats(self, msg: Msg) -> None:
        await self._reply(msg, self.stats().to_dict())
