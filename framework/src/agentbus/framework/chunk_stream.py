"""The caller's side of a stream interface: :class:`ChunkStream`, from :meth:`Bus.stream`.

The protocol is in :mod:`agentbus.framework.wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from agentbus.framework.errors import (
    BusError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from agentbus.framework.wire import (
    CANCEL_HEADER,
    END,
    NO_RESPONDERS_STATUS,
    SEQ_HEADER,
    STREAM_HEADER,
    TIMEOUT_HEADER,
    error_from,
    timeout_header,
    to_json,
)
from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.metadata import Metadata, root_headers
from agentbus.interfaces.subjects import as_caller, subject_for

if TYPE_CHECKING:
    from agentbus.framework.bus import Bus

ChunkT = TypeVar("ChunkT", bound=BusMessage)

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
        headers[TIMEOUT_HEADER] = timeout_header(self._timeout)  # the wait for the first chunk
        sub = await nc.subscribe(inbox)
        self._sub = sub
        await nc.publish(
            as_caller(subject_for(self._interface), self._bus.identity),
            to_json(self._message),
            reply=inbox,
            headers=headers,
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
        if not msg.data and headers.get("Status") == NO_RESPONDERS_STATUS:
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
