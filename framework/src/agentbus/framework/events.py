"""Durable event subscriptions: retried with backoff, dead-lettered when they keep failing.

Built on FastStream's JetStream pull subscriber with manual acknowledgement.
Each subscription is a durable consumer: replicas of one service share it (the
work is split), different services each get every event (a broadcast).

A message that cannot be decoded goes to the dead-letter stream at once; one
whose handler keeps failing goes there after ``max_deliver`` tries, with the
error. Earlier tries that died with their process count too, so a poison
message cannot crash-loop a service forever. ``agentbus deadletters`` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsMessage, PullSub
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from agentbus.framework.auth.grants import inbox_prefix
from agentbus.framework.context import MessageContext
from agentbus.framework.jetstream import DEAD_LETTER, EVENTS
from agentbus.framework.metrics import EndpointMetrics
from agentbus.interfaces.message import Interface
from agentbus.interfaces.metadata import MSG_ID
from agentbus.interfaces.subjects import dead_letter_subject, event_subject

if TYPE_CHECKING:
    from agentbus.framework.bus import Bus

log = logging.getLogger("agentbus.events")

EventHandler = Callable[[Any, MessageContext], Awaitable[None]]
"""``async def handler(event, ctx) -> None``; raising means "try again later"."""

DEAD_REASON = "Agentbus-Dead-Reason"
DEAD_ERROR = "Agentbus-Dead-Error"
DEAD_TRIES = "Agentbus-Dead-Tries"
DEAD_SERVICE = "Agentbus-Dead-Service"
DEAD_SUBJECT = "Agentbus-Dead-Subject"


def backoff(tries: int, base: float = 0.2, cap: float = 30.0) -> float:
    """Delay before the next try: exponential from ``base``, at most ``cap`` seconds."""
    return float(min(cap, base * 2 ** max(0, tries - 1)))


class EventSubscription:
    """One event interface consumed by one service through a durable consumer."""

    def __init__(
        self,
        interface: Interface[Any, Any],
        handler: EventHandler,
        *,
        bus: Bus,
        service: str,
        durable: str,
        metrics: EndpointMetrics,
        max_deliver: int,
        qualifier: str | None = None,
        ack_wait: float = 30.0,
        concurrency: int = 1,
    ) -> None:
        self.interface = interface
        self.subject = event_subject(interface.name, interface.version.major)
        if qualifier is not None:
            self.subject += f".{qualifier}"
        self.durable = durable
        self._handler = handler
        self._bus = bus
        self._service = service
        self._metrics = metrics
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._concurrency = concurrency
        self._subscriber: Any = None
        self._lock = asyncio.Lock()

    @property
    def consuming(self) -> bool:
        return self._subscriber is not None

    async def start(self) -> None:
        """Start consuming (a consumer created now sees only events published from now on);
        starting a started subscription does nothing."""
        async with self._lock:
            if self._subscriber is None:
                self._subscriber = await self._subscribe()

    async def _subscribe(self) -> Any:
        subscriber = self._bus.broker.subscriber(
            self.subject,
            stream=JStream(EVENTS.name, declare=False),
            durable=self.durable,
            pull_sub=PullSub(batch_size=max(1, self._concurrency), timeout=1.0),
            config=ConsumerConfig(
                ack_wait=self._ack_wait, deliver_policy=DeliverPolicy.NEW, max_ack_pending=1000
            ),
            ack_policy=AckPolicy.MANUAL,
            max_workers=self._concurrency,
            # Fetch replies come to the identity's private inbox (FastStream's default is
            # `_INBOX.`, which no identity may subscribe to on a server with permissions).
            inbox_prefix=f"{inbox_prefix(self._bus.identity)}.".encode(),
        )
        subscriber(self._on_message)
        await subscriber.start()
        return subscriber

    async def stop(self) -> None:
        async with self._lock:
            subscriber, self._subscriber = self._subscriber, None
            if subscriber is not None:
                await subscriber.stop()

    async def _on_message(self, message: NatsMessage) -> None:
        raw: Msg = message.raw_message
        tries = raw.metadata.num_delivered
        try:
            event = self.interface.message.model_validate_json(raw.data, extra="ignore")
        except ValidationError as exc:
            await self._dead_letter(raw, "undecodable", f"{exc.error_count()} validation errors")
            return
        if tries > self._max_deliver:
            await self._dead_letter(raw, "too_many_tries", "earlier tries did not finish")
            return
        ctx = MessageContext(raw.subject, self._bus, raw.headers, self.interface)
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive(raw))
        try:
            await self._handler(event, ctx)
        except Exception as exc:
            if tries >= self._max_deliver:
                log.exception("event %s failed %d times; dead-lettered", self.subject, tries)
                await self._dead_letter(raw, "handler_failed", f"{type(exc).__name__}: {exc}")
            else:
                log.warning("event %s failed (try %d), will retry: %r", self.subject, tries, exc)
                self._metrics.event("retried")
                await raw.nak(delay=backoff(tries))
            return
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive
        self._metrics.event("ok")
        await raw.ack()

    async def _keep_alive(self, raw: Msg) -> None:
        """Long handlers tell JetStream they are still working, so it does not redeliver."""
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            await raw.in_progress()

    async def _dead_letter(self, raw: Msg, reason: str, error: str) -> None:
        headers = dict(raw.headers or {})
        original_id = headers.get(MSG_ID) or f"seq-{raw.metadata.sequence.stream}"
        headers.update(
            {
                MSG_ID: f"{original_id}:{self._service}:{self.durable}",
                DEAD_REASON: reason,
                DEAD_ERROR: error[:1000],
                DEAD_TRIES: str(raw.metadata.num_delivered),
                DEAD_SERVICE: self._service,
                DEAD_SUBJECT: raw.subject,
            }
        )
        await self._bus.js.publish(
            dead_letter_subject(self._service, raw.subject),
            raw.data,
            headers=headers,
            stream=DEAD_LETTER.name,
        )
        self._metrics.event("dead_lettered")
        await raw.ack()
