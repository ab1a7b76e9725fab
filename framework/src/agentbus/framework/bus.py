"""The connection to NATS and the client side of the bus: request, publish.

One :class:`Bus` per process role. It owns a FastStream ``NatsBroker`` (which
owns the nats-py connection, reconnects and JetStream declarations); requests
and replies use that nats-py connection directly, so the request path pays for
nothing it does not use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Self, TypeVar

import nats.errors
import nats.js.errors
from faststream.exceptions import IncorrectState
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import ValidationError

from agentbus.framework.auth.credentials import GRANT_HINT, REFUSAL, identity_and_key
from agentbus.framework.auth.grants import inbox_prefix
from agentbus.framework.chunk_stream import ChunkStream
from agentbus.framework.config import Settings, redact_url, split_urls
from agentbus.framework.embedded import discovered_url
from agentbus.framework.errors import (
    BusError,
    NoRespondersError,
    NotConnectedError,
    PermissionDeniedError,
    RemoteError,
    RequestTimeoutError,
)
from agentbus.framework.jetstream import ReplicatedJetStream
from agentbus.framework.nats_guard import guard_nats_client
from agentbus.framework.reconnect import jittered_reconnect
from agentbus.framework.security import reason, security_for, speaks_tls, tls_advice, tls_context
from agentbus.framework.wire import TIMEOUT_HEADER, error_from, timeout_header, to_json
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.interfaces.message import BusMessage, Interface, InterfaceKind
from agentbus.interfaces.metadata import Metadata, Source, root_headers
from agentbus.interfaces.subjects import as_caller, event_subject, subject_for

log = logging.getLogger("agentbus.bus")

ReplyT = TypeVar("ReplyT", bound=BusMessage)

MIN_WAIT = 0.001
MIN_PAUSE = 0.01
"""The shortest wait before retrying ``overloaded``, whatever the hint says."""
ELECTION_WAIT = 10.0
"""Seconds a JetStream publish on a cluster waits for a stream to elect a new leader."""
ELECTION_PAUSE = 0.25
CLOSE_TIMEOUT = 2.0
"""Seconds ``close()`` waits for the connection to drain before closing it as it is."""


def resolve_nats_url(settings: Settings) -> str | None:
    """The configured URL, else the one a running ``agentbus up`` advertised, else ``None``."""
    return settings.nats_url or discovered_url(settings.data_dir)


class Bus:
    """A connection to NATS, identified as ``source`` in every message it sends."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        *,
        url: str | None = None,
        patient: bool = False,
    ) -> None:
        """``patient`` buses (services) wait for NATS forever, at start and after a loss;
        impatient ones (the CLI, clients) give up after a few quick tries."""
        guard_nats_client()  # one malformed message must not stop the connection reading
        self.settings = settings
        self.source = source
        self.identity, self.nkey_file = identity_and_key(
            settings, source.component, patient=patient
        )
        self._uses: frozenset[str] | None = None
        self._url = url or resolve_nats_url(settings)
        self._tls = tls_context(settings, self._url)
        self._tls_error: ssl.SSLError | None = None
        self._waiting: dict[str, set[asyncio.Task[Any]]] = {}
        self._refused: set[asyncio.Task[Any]] = set()
        self.refused_subscriptions: set[str] = set()
        self.replicas = settings.replicas_for(self._url)
        """Replicas of the streams and buckets declared through :attr:`js`."""
        self.broker = NatsBroker(
            split_urls(self._url or "") or "nats://127.0.0.1:4222",  # a cluster: every seed
            security=security_for(settings, self._tls, self.nkey_file),
            inbox_prefix=inbox_prefix(self.identity),
            error_cb=self._on_nats_error,
            name=str(source),
            logger=logging.getLogger("agentbus.faststream"),
            log_level=logging.DEBUG,
            max_reconnect_attempts=-1 if patient else 3,
            reconnect_time_wait=2 if patient else 0,
            reconnect_to_server_handler=jittered_reconnect(2.0 if patient else 0.0),
            connect_timeout=2,
        )
        self._connected = False
        self._source_text = str(source)

    @property
    def url(self) -> str | None:
        return self._url

    def declare_uses(self, interfaces: Collection[Interface[Any, Any]]) -> None:
        """Only these interfaces may be called or published through this bus (a service's
        ``uses`` and ``emits``): an undeclared one raises at once, naming the declaration
        to add, before the server's permissions refuse it."""
        self._uses = frozenset(i.name for i in interfaces)

    def _check_declared(self, interface: Interface[Any, Any]) -> None:
        if self._uses is not None and interface.name not in self._uses:
            field = "emits" if interface.kind is InterfaceKind.EVENT else "uses"
            raise PermissionDeniedError(
                f"{self.source.component} does not declare {interface.key}: add it to the "
                f"service's `{field}` (its identity is granted only what it declares), then "
                "`agentbus auth init`"
            )

    async def connect(self) -> Self:
        if self._connected:
            return self
        if self._url is None:
            raise NotConnectedError(
                "no NATS server configured: run `agentbus up` (it starts one), or set "
                "AGENTBUS_NATS_URL"
            )
        self._tls_error = None
        try:
            await self.broker.start()
        except (OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):  # nats-py leaves the refused socket open
                await self.broker.stop()
            tls_error = exc if isinstance(exc, ssl.SSLError) else self._tls_error
            if tls_error is not None:
                raise NotConnectedError(
                    f"cannot connect to NATS at {redact_url(self._url)} over TLS: "
                    f"{reason(tls_error)}; {tls_advice(tls_error)}"
                ) from exc
            hint = "is the server running? (`agentbus up`, or check AGENTBUS_NATS_URL)"
            if self._tls is not None:  # TLS 1.3: a refused client certificate looks like this
                hint += (
                    "; over TLS, a server that verifies clients drops one without an accepted "
                    "certificate: check AGENTBUS_NATS_TLS_CERT, AGENTBUS_NATS_TLS_KEY and "
                    "AGENTBUS_NATS_TLS_CA"
                )
            if "authorization violation" in str(exc).lower():
                raise NotConnectedError(
                    f"NATS at {redact_url(self._url)} refused identity {self.identity!r} "
                    f"({'key ' + str(self.nkey_file) if self.nkey_file else 'no credentials'}): "
                    "run `agentbus auth init` and use a key it made (AGENTBUS_NATS_NKEY_FILE, or "
                    "<data dir>/auth/<identity>.nk); a key rotated since is refused too"
                ) from exc
            raise NotConnectedError(
                f"cannot reach NATS at {redact_url(self._url)}: {exc or type(exc).__name__}; "
                + hint
            ) from exc
        if self._tls is not None and not speaks_tls(self.nc):
            await self.broker.stop()
            raise NotConnectedError(
                f"TLS is on (a tls:// URL or AGENTBUS_NATS_TLS_*) but the NATS server at "
                f"{redact_url(self._url)} does not offer TLS: configure TLS on the server, or "
                "unset the AGENTBUS_NATS_TLS_* settings and use a nats:// URL"
            )
        self._connected = True
        return self

    async def _on_nats_error(self, exc: Exception) -> None:
        """nats-py's error callback: a TLS failure before the first connection ends the
        attempt, since retrying cannot fix a certificate and nats-py 2.16 hangs after a failed
        handshake (nats-io/nats.py#718). Later ones are kept for the message."""
        if isinstance(exc, ssl.SSLError):
            self._tls_error = exc
            if not self._connected:
                raise exc
        refusal = REFUSAL.search(str(exc))
        if refusal is not None:
            self._on_refusal(refusal[1], refusal[2])
            return
        log.warning("NATS connection %s: %s", self._source_text, exc or type(exc).__name__)

    def _on_refusal(self, action: str, subject: str) -> None:
        """The server refused a publish or subscribe (subjects come lower-cased): the
        requests waiting on it fail now instead of timing out."""
        log.error(
            "NATS refused identity %s to %s %s; %s",
            self.identity,
            "publish to" if action == "publish" else "subscribe to",
            subject,
            GRANT_HINT,
        )
        if action != "publish":
            self.refused_subscriptions.add(subject)
            return
        for task in self._waiting.get(subject, ()):
            self._refused.add(task)
            task.cancel()

    async def _guarded(self, subject: str, waiting: Awaitable[Any]) -> Any:
        """Await ``waiting`` (a publish that expects an answer), failing with
        :class:`PermissionDeniedError` when the server refuses the publish to ``subject``."""
        task = asyncio.current_task()
        if task is None:
            return await waiting
        key = subject.lower()
        tasks = self._waiting.setdefault(key, set())
        tasks.add(task)
        try:
            return await waiting
        except asyncio.CancelledError:
            if task not in self._refused:
                raise
            self._refused.discard(task)
            task.uncancel()
            raise PermissionDeniedError(
                f"the NATS server refused identity {self.identity!r} to publish to {subject}; "
                + GRANT_HINT
            ) from None
        finally:
            tasks.discard(task)
            if not tasks:
                self._waiting.pop(key, None)

    async def close(self, *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Drain and disconnect; never raises. A connection that cannot drain within
        ``timeout`` (NATS unreachable, reconnecting) is closed as it is."""
        if not self._connected:
            return
        self._connected = False
        client: Client | None = self.broker._connection
        try:
            await asyncio.wait_for(self.broker.stop(), timeout)
        except Exception as exc:  # ConnectionReconnectingError, TimeoutError, ...
            log.info(
                "NATS connection %s closed without draining (%s)",
                self._source_text,
                type(exc).__name__,
            )
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), timeout)
            self.broker._connection = None  # as broker.stop() leaves it: a later connect()
            self.broker.config.disconnect()  # makes a new connection

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def nc(self) -> Client:
        try:
            client: Client = self.broker.connection
        except IncorrectState:  # FastStream's word for "not connected (yet or any more)"
            raise NotConnectedError(
                "not connected to NATS: connect the bus (or start the service) first"
            ) from None
        return client

    @property
    def js(self) -> JetStreamContext:
        """JetStream, declaring resources with :attr:`replicas` (never changing existing ones)."""
        return self.jetstream()

    def jetstream(self, *, upgrade: bool = False) -> ReplicatedJetStream:
        """JetStream; ``upgrade``: declaring raises the replicas of existing resources that
        have fewer (the connection's identity must be allowed to update streams)."""
        return ReplicatedJetStream(self.nc, replicas=self.replicas, upgrade=upgrade)

    def metadata(self, interface: Interface[Any, Any], cause: Metadata | None = None) -> Metadata:
        if cause is not None:
            return cause.caused(interface.name, interface.version, self.source)
        return Metadata(interface.name, interface.version, self.source)

    async def request(
        self,
        interface: Interface[Any, ReplyT],
        message: BusMessage,
        *,
        timeout: float | None = None,
        cause: Metadata | None = None,
    ) -> ReplyT:
        """Send a request and return the validated reply; raise :class:`RemoteError` on errors.

        The request carries ``timeout`` (the time left) as its deadline; a service that
        answers ``overloaded`` with a ``retry_after`` is asked again after that many seconds
        ±50% (jitter) while the time left after the pause is still ``retry_after`` (about
        the wait the service reported), then its error is raised."""
        if interface.kind is not InterfaceKind.REQUEST or interface.reply is None:
            raise BusError(f"{interface.key} is a {interface.kind} interface, not a request")
        self._check_declared(interface)
        if cause is None:
            headers = root_headers(self._source_text, f"{interface.name}@{interface.version}")
        else:
            headers = self.metadata(interface, cause).to_headers()
        subject = as_caller(subject_for(interface), self.identity)
        data = to_json(message)
        give_up = time.monotonic() + (timeout or self.settings.request_timeout)
        while True:
            left = max(give_up - time.monotonic(), MIN_WAIT)
            headers[TIMEOUT_HEADER] = timeout_header(left)
            msg = await self.request_raw(
                subject, data, headers=headers, timeout=left, what=interface.key
            )
            error = error_from(msg)
            if error is None:
                break
            if error.code != ErrorCode.OVERLOADED or error.retry_after is None:
                raise RemoteError(error)
            pause = max(error.retry_after, MIN_PAUSE) * random.uniform(0.5, 1.5)  # noqa: S311
            if time.monotonic() + pause + error.retry_after >= give_up:
                raise RemoteError(error)  # the retry would still have to wait about retry_after
            await asyncio.sleep(pause)
        try:
            return interface.reply.model_validate_json(msg.data, extra="ignore")
        except ValidationError as exc:
            raise BusError(
                f"the reply to {interface.key} does not match {interface.reply.__name__}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}"
            ) from exc

    def stream(
        self,
        interface: Interface[Any, ReplyT],
        message: BusMessage,
        *,
        timeout: float | None = None,
        cause: Metadata | None = None,
    ) -> ChunkStream[ReplyT]:
        """Open a stream request: ``async with bus.stream(I, m) as chunks: async for c in chunks``.

        ``timeout`` bounds the wait for each chunk; leaving early cancels the stream.
        """
        if interface.kind is not InterfaceKind.STREAM:
            raise BusError(f"{interface.key} is a {interface.kind} interface, not a stream")
        self._check_declared(interface)
        return ChunkStream(self, interface, message, timeout=timeout, cause=cause)

    async def request_raw(
        self,
        subject: str,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        what: str | None = None,
    ) -> Msg:
        """A request with bus-level errors translated; the reply is returned as is."""
        wait = timeout or self.settings.request_timeout
        try:
            msg: Msg = await self._guarded(
                subject, self.nc.request(subject, data, timeout=wait, headers=headers)
            )
            return msg
        except nats.errors.NoRespondersError:
            raise NoRespondersError(
                f"no service answers {what or subject} (subject {subject}): is it running? "
                "(`agentbus status` lists services)"
            ) from None
        except nats.errors.TimeoutError:
            raise RequestTimeoutError(
                f"no reply to {what or subject} within {wait:g}s; the service may be overloaded "
                "(try --timeout) or stuck"
            ) from None
        except nats.errors.ConnectionClosedError as exc:
            raise NotConnectedError("the NATS connection is closed") from exc

    async def publish(
        self,
        interface: Interface[Any, Any],
        message: BusMessage,
        *,
        cause: Metadata | None = None,
        qualifier: str | None = None,
        metadata: Metadata | None = None,
    ) -> PubAck:
        """Publish an event durably (JetStream); de-duplicated by message id.

        On a cluster, a stream whose leader was lost answers nobody until its replicas
        elect another: the publish is tried again (same message id) for up to
        :data:`ELECTION_WAIT` seconds before :class:`NoRespondersError`."""
        if interface.kind is not InterfaceKind.EVENT:
            raise BusError(f"{interface.key} is a {interface.kind} interface, not an event")
        self._check_declared(interface)
        meta = metadata or self.metadata(interface, cause)
        subject = event_subject(interface.name, interface.version.major, qualifier=qualifier)
        data, headers = to_json(message), meta.to_headers(dedupe=True)
        give_up = time.monotonic() + ELECTION_WAIT
        while True:
            try:
                ack: PubAck = await self._guarded(
                    subject, self.js.publish(subject, data, headers=headers)
                )
                return ack
            except nats.js.errors.NoStreamResponseError:
                if not self.nc._server_info.get("cluster") or time.monotonic() >= give_up:
                    raise NoRespondersError(
                        f"no stream stores {subject}: start a service once (it declares the "
                        "streams) or run `agentbus up`; on a cluster, its replicas may have "
                        "no leader (a majority of the nodes down)"
                    ) from None
            await asyncio.sleep(ELECTION_PAUSE * random.uniform(0.5, 1.5))  # noqa: S311

    async def publish_raw(
        self, subject: str, data: bytes, *, headers: dict[str, str] | None = None
    ) -> None:
        """A core NATS publish (no JetStream, no interface): for subjects such as a run's
        event feed that are not interfaces."""
        try:
            await self.nc.publish(subject, data, headers=headers)
        except nats.errors.ConnectionClosedError as exc:
            raise NotConnectedError("the NATS connection is closed") from exc

    async def subscribe_raw(
        self, subject: str, handler: Callable[[Msg], Awaitable[None]], *, queue: str = ""
    ) -> Subscription:
        """A core NATS subscription; the server has registered it when this returns."""
        subscription = await self.nc.subscribe(subject, queue=queue, cb=handler)
        await self.nc.flush()
        if subject.lower() in self.refused_subscriptions:
            raise PermissionDeniedError(
                f"the NATS server refused identity {self.identity!r} to subscribe to "
                f"{subject}; " + GRANT_HINT
            )
        return subscription

    def new_inbox(self) -> str:
        return self.nc.new_inbox()


__all__ = ["Bus", "resolve_nats_url"]
