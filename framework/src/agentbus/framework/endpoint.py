"""The request path: receive, check, validate, dispatch, reply — always reply.

:class:`RequestEndpoint` answers with one reply, :class:`StreamEndpoint` with a
stream of chunks (the protocol is in :mod:`agentbus.framework.wire`); both share
the checks, concurrency slots, metrics and ``$SRV`` stats of :class:`Endpoint`.

Intake never waits: each message starts as a task when the service has a free
concurrency slot, waits in its bounded queue when not, and is answered ``overloaded``
at once when the queue is full (see :mod:`agentbus.framework.slots`). A request whose
caller's deadline (``Agentbus-Timeout``) passes while it waits is dropped, with no handler
run. Every failure becomes a structured error reply and is counted, both in Prometheus
and in the ``$SRV.STATS`` numbers that NATS tooling reads; a handler that fails because
the bus is out answers ``unavailable`` (retry), not ``internal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from agentbus.framework.auth.grants import inbox_prefix
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import ServiceError
from agentbus.framework.metrics import EndpointMetrics
from agentbus.framework.outage import bus_outage
from agentbus.framework.slots import Slots
from agentbus.framework.wire import (
    CANCEL_HEADER,
    END,
    SEQ_HEADER,
    STREAM_HEADER,
    deadline_of,
    to_json,
)
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.metadata import declared_interface
from agentbus.interfaces.subjects import caller_of, callers, subject_for
from agentbus.interfaces.validation import is_bad_json, schema_violation

if TYPE_CHECKING:
    from agentbus.framework.bus import Bus

log = logging.getLogger("agentbus.endpoint")

RequestHandler = Callable[[Any, MessageContext], Awaitable[BusMessage]]
"""``async def handler(request, ctx) -> reply``: the request is already validated."""
StreamHandler = Callable[[Any, MessageContext], AsyncGenerator[BusMessage, None]]
"""``async def handler(request, ctx)`` that ``yield``\\ s chunks; the request is validated."""

LEAVE_TIMEOUT = 1.0
"""Seconds to leave a subject: one round trip to the server, unless the connection is down."""


class Endpoint(ABC):
    """One interface served by one service instance: intake, checks, counting.

    Subclasses answer: :class:`RequestEndpoint` with one reply, :class:`StreamEndpoint`
    with a stream of chunks.
    """

    def __init__(
        self,
        interface: Interface[Any, Any],
        *,
        bus: Bus,
        queue: str,
        slots: Slots,
        metrics: EndpointMetrics,
        max_payload: int,
        name: str | None = None,
    ) -> None:
        self.interface = interface
        self.name = name or interface.name.replace(".", "-")
        self.subject = subject_for(interface)
        self.queue = queue
        self._bus = bus
        self._slots = slots
        self._metrics = metrics
        self._max_payload = max_payload
        self._model = interface.message
        self._major = str(interface.version.major)
        self._subscription: Subscription | None = None
        self._direct: Subscription | None = None  # blue/green: this instance's own subject
        # $SRV.STATS numbers
        self.num_requests = 0
        self.num_errors = 0
        self.processing_time_ns = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.nc.subscribe(
            callers(self.subject), queue=self.queue, cb=self._on_message, pending_msgs_limit=65536
        )

    async def stop_intake(self) -> None:
        """Stop receiving; messages already delivered to this client are still handled
        (they wait in the service's queue)."""
        await self.leave()
        if self._direct is not None:
            direct, self._direct = self._direct, None
            await _leave(direct, self.subject)

    @property
    def serving(self) -> bool:
        """Subscribed to the production subject (in the service's queue group)."""
        return self._subscription is not None

    async def open_direct(self, subject: str) -> None:
        """Also answer on ``subject`` (no queue group): a blue/green instance's own address."""
        if self._direct is None:
            self._direct = await self._bus.nc.subscribe(
                callers(subject), cb=self._on_message, pending_msgs_limit=65536
            )

    async def leave(self) -> None:
        """Leave the production subject: what was delivered is still handled."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await _leave(subscription, self.subject)

    async def _on_message(self, msg: Msg) -> None:
        """Intake: start, queue or refuse, never wait (the subscription delivers the next
        message only when this returns)."""
        received = time.monotonic()
        self.num_requests += 1
        self._metrics.requests.inc()
        delivery = _Delivery(self, msg, deadline_of(msg.headers, received))
        if delivery.deadline is not None and delivery.deadline <= received:
            delivery.expired()
            return
        if self._slots.admit(delivery):
            return
        if self._slots.closed:
            refusal = ErrorReply.of(
                ErrorCode.UNAVAILABLE, "the service is shutting down; retry the request"
            )
        else:
            retry_after = self._slots.retry_after()
            refusal = ErrorReply(
                code=ErrorCode.OVERLOADED,
                message=f"{self.name} is at capacity ({self._slots.limit} running, "
                f"{self._slots.queued} queued); retry in about {retry_after:g}s, or raise its "
                "AGENTBUS_MAX_CONCURRENCY / AGENTBUS_MAX_QUEUE, or add a replica",
                retry_after=retry_after,
            )
        await self._refuse(msg, refusal)

    def _dropped(self) -> None:
        self._metrics.dropped.inc()

    @abstractmethod
    async def _handle(self, msg: Msg) -> None:
        """Answer one message; every error becomes an error reply (and is counted)."""

    @abstractmethod
    async def _refuse(self, msg: Msg, reply: ErrorReply) -> None:
        """Answer ``msg`` with ``reply`` without running the handler (and count it)."""

    def _decode(self, msg: Msg) -> BusMessage | ErrorReply:
        """The validated request, or the error reply that explains why there is none."""
        if len(msg.data) > self._max_payload:
            return ErrorReply.of(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the request is {len(msg.data)} bytes; this service accepts at most "
                f"{self._max_payload} (AGENTBUS_MAX_PAYLOAD)",
                size=len(msg.data),
                limit=self._max_payload,
            )
        if declared := declared_interface(msg.headers):
            _, _, version = declared.partition("@")
            if version.split(".", 1)[0] != self._major:
                return ErrorReply.of(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"{self.interface.name} version {version or '?'} is not served here; "
                    f"this service speaks {self.interface.version} (major {self._major})",
                    requested=version,
                    served=str(self.interface.version),
                )
        try:
            request: BusMessage = self._model.model_validate_json(msg.data)
        except ValidationError as exc:
            return _validation_reply(exc, self.interface)
        return request

    def _failed(self, exc: Exception) -> ErrorReply:
        """The reply for a handler that raised: ``unavailable`` when the bus is out (a
        passing fault), else ``internal`` (the traceback goes to the log)."""
        if (outage := bus_outage(exc)) is not None:
            log.warning(
                "handler for %s failed: the bus is out (%s: %s)",
                self.interface.key,
                type(outage).__name__,
                outage,
            )
            return ErrorReply.of(
                ErrorCode.UNAVAILABLE,
                f"the {self.interface.name} handler could not reach NATS or JetStream "
                f"({type(outage).__name__}): the bus or a service it calls is down or "
                "restarting; retry the request",
                exception=type(outage).__name__,
            )
        log.error("handler for %s failed", self.interface.key, exc_info=exc)
        return ErrorReply.of(
            ErrorCode.INTERNAL,
            f"the {self.interface.name} handler failed ({type(exc).__name__}); see the service log",
            exception=type(exc).__name__,
        )

    def _wrong_type(self, result: object) -> ErrorReply:
        return ErrorReply.of(
            ErrorCode.INTERNAL,
            f"the handler returned {type(result).__name__}, not "
            f"{getattr(self.interface.reply, '__name__', '?')}",
        )

    def _error(self, reply: ErrorReply) -> tuple[bytes, dict[str, str]]:
        self.num_errors += 1
        self.last_error = f"{reply.code}: {reply.message}"
        self._metrics.error(reply.code)
        return to_json(reply), reply.headers()


class RequestEndpoint(Endpoint):
    """Request/reply: one validated request in, one reply (or error reply) out."""

    def __init__(
        self, interface: Interface[Any, Any], handler: RequestHandler, **kwargs: Any
    ) -> None:
        super().__init__(interface, **kwargs)
        self._handler = handler

    async def _handle(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        try:
            data, headers = await self._answer(msg)
        except asyncio.CancelledError:
            data, headers = self._error(
                ErrorReply.of(
                    ErrorCode.UNAVAILABLE,
                    "the service stopped before it could answer; retry the request",
                )
            )
            await self._respond(msg, data, headers)
            raise
        await self._respond(msg, data, headers)
        elapsed = time.perf_counter_ns() - started
        self.processing_time_ns += elapsed
        self._metrics.latency.observe(elapsed / 1e9)

    async def _refuse(self, msg: Msg, reply: ErrorReply) -> None:
        await self._respond(msg, *self._error(reply))

    async def _respond(self, msg: Msg, data: bytes, headers: dict[str, str] | None) -> None:
        if not msg.reply:
            return  # a publish, not a request: nobody to answer
        try:  # not msg.respond(): it would echo the request's headers back
            await self._bus.nc.publish(msg.reply, data, headers=headers)
        except Exception:  # the connection may be closing; the request is lost to the caller
            log.warning("could not send the reply on %s", self.subject, exc_info=True)

    async def _answer(self, msg: Msg) -> tuple[bytes, dict[str, str] | None]:
        request = self._decode(msg)
        if isinstance(request, ErrorReply):
            return self._error(request)
        ctx = MessageContext(msg.subject, self._bus, msg.headers, self.interface)
        try:
            result = await self._handler(request, ctx)
        except ServiceError as exc:
            return self._error(exc.reply)
        except Exception as exc:
            return self._error(self._failed(exc))
        if type(result) is not self.interface.reply:
            return self._error(self._wrong_type(result))
        return to_json(result), None


class StreamEndpoint(Endpoint):
    """One stream interface served by one service instance.

    Shares the request path's checks, concurrency slots, metrics and ``$SRV``
    stats with :class:`RequestEndpoint`; only the answering differs.
    """

    def __init__(
        self, interface: Interface[Any, Any], handler: StreamHandler, **kwargs: Any
    ) -> None:
        super().__init__(interface, **kwargs)
        self._stream_handler = handler

    async def _handle(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        if not msg.reply:
            return  # nobody to stream to
        request = self._decode(msg)
        if isinstance(request, ErrorReply):
            await self._send(msg.reply, *self._error(request), seq=0)
            return
        task = asyncio.current_task()
        cancelled_by_caller = False

        async def on_cancel(_: Msg) -> None:
            nonlocal cancelled_by_caller
            cancelled_by_caller = True
            if task is not None:
                task.cancel()

        cancel_subject = _cancel_subject(msg)
        cancel_sub: Subscription | None = None
        if cancel_subject:
            cancel_sub = await self._bus.nc.subscribe(cancel_subject, cb=on_cancel, max_msgs=1)
        seq = 0
        try:
            ctx = MessageContext(msg.subject, self._bus, msg.headers, self.interface)
            final: tuple[bytes, dict[str, str]]
            try:
                async with contextlib.aclosing(self._stream_handler(request, ctx)) as chunks:
                    async for chunk in chunks:
                        if type(chunk) is not self.interface.reply:
                            final = self._error(self._wrong_type(chunk))
                            break
                        await self._send(msg.reply, to_json(chunk), {}, seq=seq)
                        seq += 1
                    else:
                        final = b"", {STREAM_HEADER: END}
            except ServiceError as exc:
                final = self._error(exc.reply)
            except asyncio.CancelledError:
                if not cancelled_by_caller:  # shutdown: the caller still deserves an answer
                    await self._send(
                        msg.reply,
                        *self._error(
                            ErrorReply.of(
                                ErrorCode.UNAVAILABLE,
                                "the service stopped before the stream ended; retry the request",
                            )
                        ),
                        seq=seq,
                    )
                    raise
                if task is not None:
                    task.uncancel()
                log.debug("%s stream cancelled by the caller after %d chunk(s)", self.subject, seq)
                return
            except Exception as exc:
                final = self._error(self._failed(exc))
            await self._send(msg.reply, *final, seq=seq)
        finally:
            if cancel_sub is not None:
                with contextlib.suppress(Exception):
                    await cancel_sub.unsubscribe()
        elapsed = time.perf_counter_ns() - started
        self.processing_time_ns += elapsed
        self._metrics.latency.observe(elapsed / 1e9)

    async def _refuse(self, msg: Msg, reply: ErrorReply) -> None:
        if msg.reply:
            await self._send(msg.reply, *self._error(reply), seq=0)

    async def _send(self, reply: str, data: bytes, headers: dict[str, str], *, seq: int) -> None:
        headers[SEQ_HEADER] = str(seq)
        try:
            await self._bus.nc.publish(reply, data, headers=headers)
        except Exception:  # the connection may be closing; the caller will time out
            log.warning("could not send a chunk on %s", reply, exc_info=True)


class _Delivery:
    """A received message, as the service's slots queue and start it."""

    __slots__ = ("deadline", "endpoint", "msg")

    def __init__(self, endpoint: Endpoint, msg: Msg, deadline: float | None) -> None:
        self.endpoint = endpoint
        self.msg = msg
        self.deadline = deadline

    def run(self) -> Coroutine[Any, Any, None]:
        return self.endpoint._handle(self.msg)

    def expired(self) -> None:
        self.endpoint._dropped()

    def refuse(self, reply: ErrorReply) -> Coroutine[Any, Any, None]:
        return self.endpoint._refuse(self.msg, reply)


async def _leave(subscription: Subscription, subject: str) -> None:
    """Unsubscribe, and hand what nats-py already holds to the intake (which never waits, so
    this is one round trip to the server), within :data:`LEAVE_TIMEOUT`."""
    try:
        await asyncio.wait_for(
            subscription.drain(),  # type: ignore[no-untyped-call]
            LEAVE_TIMEOUT,
        )
    except (TimeoutError, nats.errors.Error) as exc:  # the connection is down or closing
        log.warning("left %s without draining it (%s)", subject, type(exc).__name__)


def _cancel_subject(msg: Msg) -> str | None:
    """The caller's cancel subject, only when it lies in the caller's own inbox
    (``_INBOX_<caller>.<id>.cancel``): the header is the caller's word, and a service
    must not subscribe wherever a caller points it."""
    subject = (msg.headers or {}).get(CANCEL_HEADER)
    if not subject:
        return None
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != inbox_prefix(caller_of(msg.subject)) or parts[2] != "cancel":
        log.debug("ignored a cancel subject outside the caller's inbox: %r", subject)
        return None
    return subject


def _validation_reply(exc: ValidationError, interface: Interface[Any, Any]) -> ErrorReply:
    if is_bad_json(exc):
        return ErrorReply.of(
            ErrorCode.BAD_JSON, f"the request is not valid JSON: {exc.errors()[0]['msg']}"
        )
    return schema_violation(
        exc, f"the request does not match {interface.message.__name__} ({interface.key})"
    )
