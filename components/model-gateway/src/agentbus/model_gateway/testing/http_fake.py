"""A scripted HTTP server on loopback: what the fake providers (:mod:`.openai_fake`,
:mod:`.anthropic_fake`) are made of.

Each fake runs its own event loop in a thread, on ``127.0.0.1`` and a free port,
so the code under test talks to it exactly as to a provider: through the
official SDK, over HTTP, with SSE for streams. Tests script the replies::

    with FakeOpenAI() as fake:
        fake.script(openai_error(429, retry_after=0.1), openai_text("hi"))
        ...
        assert len(fake.requests) == 2

A stream can be held part-way (``hold``, a ``threading.Event``) until the test
lets it go on, or cut off after its first ``cut_after`` events (the HTTP response
ends cleanly there: no finish reason, no ``[DONE]``, as when a proxy drops an
upstream that died mid-answer). Unscripted requests get the fake's default answer (a function of the
request). Received requests are recorded, and so is a client that hung up in the
middle of a stream (``disconnected``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Scripted:
    """One HTTP answer: a JSON or raw body, or a stream of SSE events."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    events: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    event_delay: float = 0.0
    hold: threading.Event | None = None
    """Wait until this is set before answering (streams: after ``hold_after`` events)."""
    hold_after: int = 1
    cut_after: int | None = None
    """Streams: end the response (cleanly) after this many events; the rest is never sent."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


Responder = Callable[[Received], Scripted]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}


class FakeServer:
    """A scripted HTTP/1.1 server (keep-alive, chunked SSE) in a background thread."""

    __test__ = False

    def __init__(self, default: Responder) -> None:
        self._default = default
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.disconnected = threading.Event()
        self.streams_completed = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Scripted) -> Self:
        with self._lock:
            self._script.extend(replies)
        return self

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
        self.disconnected.clear()
        self.streams_completed = 0

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fake-provider", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake provider did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for writer in list(self._writers):
                writer.close()
            await asyncio.sleep(0)

    def _next(self, received: Received) -> Scripted:
        with self._lock:
            self.requests.append(received)
            if self._script:
                return self._script.popleft()
        return self._default(received)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                received = await _read_request(reader)
                if received is None:
                    return
                reply = self._next(received)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.events is not None:
                    await self._stream(reader, writer, reply)
                    return
                if reply.hold is not None:
                    await _released(reply.hold)
                body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
                headers = {"Content-Type": "application/json", **reply.headers}
                writer.write(_head(reply.status, headers, len(body)) + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: Scripted
    ) -> None:
        headers = {
            "Content-Type": "text/event-stream",
            "Transfer-Encoding": "chunked",
            "Connection": "close",
            **reply.headers,
        }
        writer.write(_head(reply.status, headers, None))
        hung_up = asyncio.ensure_future(reader.read(1))  # EOF: the client closed the stream
        events = list(reply.events or [])
        cut = reply.cut_after is not None and reply.cut_after < len(events)
        try:
            for index, event in enumerate(events[: reply.cut_after]):
                if index and reply.event_delay:
                    await asyncio.wait({hung_up}, timeout=reply.event_delay)
                if index == reply.hold_after and reply.hold is not None:
                    while not reply.hold.is_set() and not hung_up.done():
                        await asyncio.wait({hung_up}, timeout=0.01)
                if hung_up.done():
                    self.disconnected.set()
                    return
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            if not cut:
                self.streams_completed += 1
        except ConnectionError:
            self.disconnected.set()
        finally:
            hung_up.cancel()
            with contextlib.suppress(BaseException):
                await hung_up


async def _released(hold: threading.Event) -> None:
    """Wait for a test's event without blocking this loop (or a thread for long)."""
    while not await asyncio.to_thread(hold.wait, 0.05):
        pass


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Received(method, path, headers, json.loads(body) if body else None)


def _head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already text."""
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def malformed(body: bytes = b'{"choices": [{"message": ') -> Scripted:
    """A 200 answer whose JSON body is cut off."""
    return Scripted(body=body)
