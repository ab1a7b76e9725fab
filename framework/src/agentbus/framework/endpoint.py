"""The request path: receive, check, validate, dispatch, reply — always reply.

Each message becomes a task (bounded by the service's concurrency slots), so
one slow request does not hold up the others. Every failure becomes a
structured error reply and is counted, both in Prometheus and in the
``$SRV.STATS`` numbers that NATS tooling reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from agentbus.framework.bus import Bus, to_json
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import ServiceError
from agentbus.framework.metrics import EndpointMetrics
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.metadata import declared_interface
from agentbus.interfaces.subjects import subject_for

log = logging.getLogger("agentbus.endpoint")

RequestHandler = Callable[[Any, MessageContext], Awaitable[BusMessage]]
"""``async def handler(request, ctx) -> reply``: the request is already validated."""


class Slots:
    """Concurrency slots shared by a service's endpoints, and its in-flight tasks."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self.tasks: set[asyncio.Task[None]] = set()

    async def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        await self._semaphore.acquire()
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._semaphore.release()

    def __len__(self) -> int:
        return len(self.tasks)

    async def wait(self, timeout: float) -> int:
        """Wait for in-flight work; cancel what is left after ``timeout``. Returns cancelled."""
        pending = set(self.tasks)
        if not pending:
            return 0
        _done, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=1.0)
        return len(still)


class Endpoint(ABC):
    """One interface served by one service instance: intake, checks, counting.

    Subclasses answer: :class:`RequestEndpoint` with one reply,
    :class:`~agentbus.framework.streaming.StreamEndpoint` with a stream of chunks.
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
            self.subject, queue=self.queue, cb=self._on_message, pending_msgs_limit=65536
        )

    async def stop_intake(self) -> None:
        """Stop receiving; messages already delivered to this client are still handled."""
        await self.leave()
        if self._direct is not None:
            direct, self._direct = self._direct, None
            await direct.drain()  # type: ignore[no-untyped-call]

    @property
    def serving(self) -> bool:
        """Subscribed to the production subject (in the service's queue group)."""
        return self._subscription is not None

    async def open_direct(self, subject: str) -> None:
        """Also answer on ``subject`` (no queue group): a blue/green instance's own address."""
        if self._direct is None:
            self._direct = await self._bus.nc.subscribe(
                subject, cb=self._on_message, pending_msgs_limit=65536
            )

    async def leave(self) -> None:
        """Leave the production subject by draining: what was delivered is still handled."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.drain()  # type: ignore[no-untyped-call]

    def reset(self) -> None:
        self.num_requests = self.num_errors = self.processing_time_ns = 0
        self.last_error = None

    async def _on_message(self, msg: Msg) -> None:
        await self._slots.spawn(self._handle(msg))

    @abstractmethod
    async def _handle(self, msg: Msg) -> None:
        """Answer one message; every error becomes an error reply (and is counted)."""

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
        """The ``internal`` reply for a handler that raised (the traceback goes to the log)."""
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
        self.num_requests += 1
        self._metrics.requests.inc()
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


def _validation_reply(exc: ValidationError, interface: Interface[Any, Any]) -> ErrorReply:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ErrorReply.of(
            ErrorCode.BAD_JSON,
            f"the request is not valid JSON: {errors[0]['msg']}",
        )
    problems = [
        {"loc": ".".join(str(p) for p in e["loc"]) or "(root)", "msg": e["msg"], "type": e["type"]}
        for e in errors[:20]
    ]
    first = problems[0]
    model = interface.message.__name__
    return ErrorReply.of(
        ErrorCode.SCHEMA_VIOLATION,
        f"the request does not match {model} ({interface.key}): {first['loc']}: {first['msg']}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        errors=problems,
    )
