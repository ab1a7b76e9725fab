"""Stream interfaces: one request, an ordered series of chunks on the reply subject.

The wire protocol::

    caller  --request (reply=<inbox>, Agentbus-Cancel: <inbox>.cancel)-->  service
    caller  <--chunk  (Agentbus-Seq: 0)--                                   service
    caller  <--chunk  (Agentbus-Seq: 1)--                                   service
    caller  <--end    (Agentbus-Seq: 2, Agentbus-Stream: end, empty body)--  service
            or an error reply (Agentbus-Seq: n, Agentbus-Error: <code>, ErrorReply body)

A caller that stops early publishes anything to the cancel subject; the service
cancels the handler's task, so the handler's ``finally`` blocks run (closing,
for example, a provider's HTTP stream). Sequence numbers let the caller notice a
lost chunk (a slow consumer) instead of returning a silently damaged answer.

Server side: :class:`StreamEndpoint`, for methods marked ``@streams(INTERFACE)``
that are async generators of chunk models. Client side: :class:`ChunkStream`,
returned by :meth:`Bus.stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, Self, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from agentbus.framework.bus import Bus, error_from, to_json
from agentbus.framework.context import MessageContext
from agentbus.framework.endpoint import Endpoint
from agentbus.framework.errors import (
    BusError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
    ServiceError,
)
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.metadata import Metadata, root_headers
from agentbus.interfaces.subjects import subject_for

log = logging.getLogger("agentbus.streaming")

SEQ_HEADER = "Agentbus-Seq"
STREAM_HEADER = "Agentbus-Stream"
CANCEL_HEADER = "Agentbus-Cancel"
END = "end"
_NO_RESPONDERS = "503"

ChunkT = TypeVar("ChunkT", bound=BusMessage)

StreamHandler = Callable[[Any, MessageContext], AsyncGenerator[BusMessage, None]]
"""``async def handler(request, ctx)`` that ``yield``\\ s chunks; the request is validated."""


class StreamEndpoint(Endpoint):
    """One stream interface served by one service instance.

    Shares the request path's checks, concurrency slots, metrics and ``$SRV``
    stats with :class:`~agentbus.framework.endpoint.RequestEndpoint`; only the
    answering differs.
    """

    def __init__(
        self, interface: Interface[Any, Any], handler: StreamHandler, **kwargs: Any
    ) -> None:
        super().__init__(interface, **kwargs)
        self._stream_handler = handler

    async def _handle(self, msg: Msg) -> None:
        started = time.perf_counter_ns()
        self.num_requests += 1
        self._metrics.requests.inc()
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

        cancel_subject = (msg.headers or {}).get(CANCEL_HEADER)
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

    async def _send(self, reply: str, data: bytes, headers: dict[str, str], *, seq: int) -> None:
        headers[SEQ_HEADER] = str(seq)
        try:
            await self._bus.nc.publish(reply, data, headers=headers)
        except Exception:  # the connection may be closing; the caller will time out
            log.warning("could not send a chunk on %s", reply, exc_info=True)


LATE_CANCELS = 5
"""Cancels a stream's inbox sends back, at most, for chunks that arrive after it was left."""
LATE_CANCEL_SECONDS = 60.0
"""How long a left stream's inbox keeps answering late chunks with a cancel."""
_unsubscribing: set[asyncio.Task[None]] = set()


def _unsubscribe_soon(subscription: Subscription) -> None:
    """Unsubscribe in the background (it may be gone already: ``max_msgs``, a closed client)."""

    async def unsubscribe() -> None:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    task = asyncio.ensure_future(unsubscribe())
    _unsubscribing.add(task)
    task.add_done_callback(_unsubscribing.discard)


class ChunkStream(Generic[ChunkT]):
    """The caller's side of a stream: an async iterator of chunks, and a context manager.

    ::

        async with bus.stream(STREAM, request) as chunks:
            async for chunk in chunks:
                ...

    Leaving early (``break``, an exception, task cancellation) cancels the
    stream at the service. ``timeout`` bounds the wait for *each* chunk. An error
    chunk raises :class:`RemoteError`.
    """

    def __init__(
        self,
        bus: Bus,
        interface: Interface[Any, ChunkT],
        message: BusMessage,
        *,
        timeout: float | None = None,
        cause: Metadata | None = None,
    ) -> None:
        if interface.reply is None:
            raise BusError(f"{interface.key} declares no chunk model")
        self._bus = bus
        self._interface = interface
        self._chunk: type[ChunkT] = interface.reply
        self._message = message
        self._timeout = timeout or bus.settings.request_timeout
        self._cause = cause
        self._sub: Subscription | None = None
        self._cancel_subject = ""
        self._seq = 0
        self._done = False

    async def _open(self) -> Subscription:
        nc = self._bus.nc
        inbox = nc.new_inbox()
        self._cancel_subject = f"{inbox}.cancel"
        if self._cause is None:
            headers = root_headers(
                str(self._bus.source), f"{self._interface.name}@{self._interface.version}"
            )
        else:
            headers = self._bus.metadata(self._interface, self._cause).to_headers()
        headers[CANCEL_HEADER] = self._cancel_subject
        sub = await nc.subscribe(inbox)
        self._sub = sub
        await nc.publish(
            subject_for(self._interface), to_json(self._message), reply=inbox, headers=headers
        )
        return sub

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChunkT:
        if self._done:
            raise StopAsyncIteration
        sub = self._sub or await self._open()
        try:
            msg = await sub.next_msg(timeout=self._timeout)
        except nats.errors.TimeoutError:
            await self._finish(cancel=True)
            raise RequestTimeoutError(
                f"no chunk of {self._interface.key} within {self._timeout:g}s; the service may "
                "be overloaded or stuck (raise the timeout?)"
            ) from None
        except asyncio.CancelledError:
            await self._finish(cancel=True)
            raise
        headers = msg.headers or {}
        if not msg.data and headers.get("Status") == _NO_RESPONDERS:
            await self._finish(cancel=False)
            raise NoRespondersError(
                f"no service answers {self._interface.key}: is it running? (`agentbus status`)"
            )
        error = error_from(msg)
        if error is not None:
            await self._finish(cancel=False)
            raise RemoteError(error)
        if headers.get(SEQ_HEADER) != str(self._seq):
            await self._finish(cancel=True)
            raise BusError(
                f"the {self._interface.key} stream lost chunks (expected #{self._seq}, got "
                f"#{headers.get(SEQ_HEADER)}); retry the request"
            )
        self._seq += 1
        if headers.get(STREAM_HEADER) == END:
            await self._finish(cancel=False)
            raise StopAsyncIteration
        try:
            return self._chunk.model_validate_json(msg.data, extra="ignore")
        except ValidationError as exc:
            await self._finish(cancel=True)
            raise BusError(
                f"a chunk of {self._interface.key} does not match {self._chunk.__name__}: "
                f"{exc.errors()[0]['msg']}"
            ) from exc

    async def aclose(self) -> None:
        """Stop listening; cancels the stream at the service if it has not ended."""
        await self._finish(cancel=True)

    async def _finish(self, *, cancel: bool) -> None:
        if self._done:
            return
        self._done = True
        if self._sub is None:
            return
        nc = self._bus.nc
        with contextlib.suppress(Exception):
            if cancel:
                await nc.publish(self._cancel_subject, b"")
                await self._cancel_late_chunks()
            await self._sub.unsubscribe()

    async def _cancel_late_chunks(self) -> None:
        """Cancel again for each chunk that still arrives, for a while.

        A handler subscribes to the cancel subject only when it starts; a request still
        waiting for one of the service's slots does not hear a cancel sent meanwhile.
        Its first chunk after that shows the stream still runs: answer it with a cancel."""
        assert self._sub is not None
        nc = self._bus.nc
        subject = self._cancel_subject

        async def again(_: Msg) -> None:
            with contextlib.suppress(Exception):
                await nc.publish(subject, b"")

        watcher = await nc.subscribe(self._sub.subject, cb=again, max_msgs=LATE_CANCELS)
        asyncio.get_running_loop().call_later(LATE_CANCEL_SECONDS, _unsubscribe_soon, watcher)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
