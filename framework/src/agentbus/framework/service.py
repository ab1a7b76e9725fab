"""The service base: lifecycle, typed request handlers and event subscribers.

::

    class Greeter(Service):
        name = "greeter"
        version = "1.0.0"

        @handles(GREET)
        async def greet(self, request: GreetRequest, ctx: MessageContext) -> GreetReply: ...

        @streams(TELL)
        async def tell(self, request: TellRequest, ctx: MessageContext) -> AsyncIterator[Chunk]:
            yield Chunk(...)

        @subscribes(GREETED)
        async def on_greeted(self, event: Greeted, ctx: MessageContext) -> None: ...

A service is an async context manager: entering starts it (connect, declare
JetStream resources, ``initialize``, open endpoints), leaving stops it (unsubscribe,
finish running and queued requests within ``shutdown_grace``, answer what is left
``unavailable``, ``shutdown``, disconnect: all within the grace and one second).
Endpoints join the queue group named after the service, so replicas split the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from nats.js.kv import KeyValue

from agentbus.framework.auth.grants import Grants
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings, redact_url
from agentbus.framework.declarations import (
    Declaration,
    SubscriptionSpec,
)
from agentbus.framework.deploy.roles import DeployRole
from agentbus.framework.discovery import Discovery
from agentbus.framework.endpoint import Endpoint, RequestEndpoint, StreamEndpoint
from agentbus.framework.errors import ConfigError, PermissionDeniedError
from agentbus.framework.events import EventHandler, EventSubscription
from agentbus.framework.filewatch import FileWatch, OnChange
from agentbus.framework.jetstream import CONFIG_BUCKET, declare_all, key_value
from agentbus.framework.metrics import ServiceMetrics
from agentbus.framework.slots import Slots
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.message import Interface, InterfaceKind
from agentbus.interfaces.metadata import Source, new_id
from agentbus.interfaces.semver import Version
from agentbus.interfaces.subjects import direct_subject, event_subject, subject_for, token

log = logging.getLogger("agentbus.service")

STOP_MARGIN = 1.0
"""Seconds ``stop()`` may take beyond ``shutdown_grace``: to send the last replies and close."""
MIN_CLOSE = 0.2


class Service:
    """Base of every agentbus service. Subclass, set ``name`` and ``version``, add handlers.

    ``name`` and ``description`` may also be given at construction, for services whose
    name depends on their arguments (one maintainer per component).
    """

    name: str = ""
    version: ClassVar[str] = "0.1.0"
    description: str = ""
    uses: ClassVar[tuple[Interface[Any, Any], ...]] = ()
    """Request and stream interfaces this service calls: its identity may call only these."""
    emits: ClassVar[tuple[Interface[Any, Any], ...]] = ()
    """Event interfaces this service publishes: its identity may publish only these."""

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> Grants:
        """Subjects beyond interfaces this service needs as identity ``name`` when started
        with ``environment`` (its own KV buckets and streams, raw subjects, subscriptions it
        makes at run time); see ``agentbus.framework.auth.grants``."""
        return Grants()

    @classmethod
    def deployed_identities(cls, name: str, environment: Mapping[str, str]) -> dict[str, Grants]:
        """Identities of the versions this service deploys (a maintainer's component), by
        name, when it runs as ``name`` with ``environment``; ``agentbus up`` and ``agentbus
        auth init`` admit them too, and a deployed version connects with its own key."""
        return {}

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        instance: str | None = None,
        url: str | None = None,
        queue_group: str | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if not self.name:
            raise ConfigError(
                f"{type(self).__name__} must set the class attribute `name` (or pass name=... "
                "to the constructor)"
            )
        token(self.name)
        Version.parse(self.version)
        self.settings = settings or Settings.load()
        self.instance = instance or self.settings.instance or new_id()[:12]
        self.queue_group = queue_group or self.name
        self.source = Source(self.name, self.instance, self.version)
        self.bus = Bus(self.settings, self.source, url=url, patient=True)
        self.bus.declare_uses((*self.uses, *self.emits))
        self.metrics = ServiceMetrics(self.name)
        self.metrics_port: int | None = None
        self.config: dict[str, Any] = {}
        self.endpoints: list[Endpoint] = []
        self.subscriptions: list[EventSubscription] = []
        self._slots = Slots(self.settings.max_concurrency, self.settings.max_queue)
        self.metrics.track_in_flight(self._slots.__len__, lambda: self._slots.queued)
        self._discovery: Discovery | None = None
        self._config_task: asyncio.Task[None] | None = None
        self._file_watches: list[FileWatch] = []
        self._role: DeployRole | None = None  # blue/green: only when settings.deploy_color
        self._started = False

    # -- lifecycle hooks -------------------------------------------------------------

    async def initialize(self) -> None:
        """Called once connected, before any endpoint takes work."""

    async def shutdown(self) -> None:
        """Called after in-flight work finished (or was cancelled), before disconnecting."""

    async def on_config_change(self, config: dict[str, Any]) -> None:
        """Called with the new value of key ``<name>`` in the ``agentbus_config`` bucket."""

    async def watch_file(self, path: Path, on_change: OnChange) -> FileWatch | None:
        """Call ``on_change()`` each time the content of ``path`` changes, until the service
        stops; checked every ``settings.file_watch_interval`` seconds (0: never, returns
        None). For configuration files a service reads in :meth:`initialize`."""
        if self.settings.file_watch_interval <= 0:
            return None
        watch = FileWatch(path, on_change, interval=self.settings.file_watch_interval)
        await watch.start()
        self._file_watches.append(watch)
        return watch

    # -- running ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self.bus.connect()
        try:
            await declare_all(self.bus.js, self.settings.jetstream_storage)
            if self.settings.metrics_port is not None:
                self.metrics_port = self.metrics.serve(
                    self.settings.metrics_port, self.settings.metrics_host
                )
            kv = await key_value(self.bus.js, CONFIG_BUCKET)
            await self._load_config(kv)
            await self.initialize()
            await self._open()
            # Watch here, not in the task: nats-py can swallow a cancellation that lands while
            # the watch is being set up, and stop() would then wait for the task forever.
            watcher = await kv.watch(self.name, include_history=False)
            self._config_task = asyncio.get_running_loop().create_task(self._watch_config(watcher))
        except BaseException:
            await self._close_connection()
            raise
        self._started = True
        log.info(
            "%s %s (%s) serving %d endpoint(s), %d subscription(s) on %s",
            self.name,
            self.version,
            self.instance,
            len(self.endpoints),
            len(self.subscriptions),
            redact_url(self.bus.url or ""),
        )

    def declarations(self) -> Iterator[Declaration]:
        """What this service serves and consumes: its ``@handles``, ``@streams`` and
        ``@subscribes`` methods (a subclass may add to them)."""
        for attribute in dir(type(self)):
            method = getattr(self, attribute, None)
            for marker in (
                "__agentbus_handles__",
                "__agentbus_streams__",
                "__agentbus_subscribes__",
            ):
                if (spec := getattr(method, marker, None)) is not None:
                    yield Declaration(spec, method, attribute)  # type: ignore[arg-type]

    async def _open(self) -> None:
        for declared in self.declarations():
            spec = declared.spec
            if isinstance(spec, SubscriptionSpec):
                await self.subscribe(
                    spec.interface,
                    declared.handler,
                    durable=spec.durable or f"{self.queue_group}__{declared.attribute}",
                    qualifier=spec.qualifier,
                    ack_wait=spec.ack_wait,
                    concurrency=spec.concurrency,
                )
                continue
            kind = (
                RequestEndpoint if spec.interface.kind is InterfaceKind.REQUEST else StreamEndpoint
            )
            endpoint = kind(
                spec.interface,
                declared.handler,
                bus=self.bus,
                queue=self.queue_group,
                slots=self._slots,
                metrics=self.metrics.endpoint(subject_for(spec.interface)),
                max_payload=self.settings.max_payload,
                name=spec.name,
            )
            await self._start_endpoint(endpoint)
            self.endpoints.append(endpoint)
        self._discovery = Discovery(
            self.bus.nc,
            name=self.name,
            instance=self.instance,
            version=self.version,
            description=self.description or (type(self).__doc__ or "").strip().split("\n")[0],
            metadata=self.discovery_metadata(),
            endpoints=self.endpoints,
        )
        await self._discovery.start()
        if self.settings.deploy_color is not None:
            self._role = DeployRole(
                self.settings.deploy_component or self.name,
                self.settings.deploy_color,
                client=self.bus.nc,
                endpoints=self.endpoints,
                subscriptions=self.subscriptions,
                metadata=self._discovery.metadata,
            )
            await self._role.start(self.bus.js)
        await self.bus.nc.flush()
        if self.bus.refused_subscriptions:
            raise PermissionDeniedError(
                f"the NATS server refused identity {self.bus.identity!r} to subscribe to "
                f"{', '.join(sorted(self.bus.refused_subscriptions))}: its grants do not "
                f"cover what {type(self).__name__} serves; run `agentbus auth init` (grants "
                "are derived from the code) and restart it"
            )

    async def subscribe(
        self,
        interface: Interface[Any, Any],
        handler: EventHandler,
        *,
        durable: str | None = None,
        qualifier: str | None = None,
        ack_wait: float = 30.0,
        concurrency: int = 1,
    ) -> EventSubscription:
        """Consume an event interface through a durable consumer, as ``@subscribes`` does:
        from :meth:`initialize` or any time later, for subscriptions known only at run time.

        ``durable`` names the consumer (default ``<queue group>__<interface name>``):
        replicas sharing it split the events, another name gets every event again. A
        service started with a deploy color consumes only while its color serves."""
        if interface.kind is not InterfaceKind.EVENT:
            raise ConfigError(
                f"subscribe() needs an event interface; {interface.key} is {interface.kind}"
            )
        subscription = EventSubscription(
            interface,
            handler,
            bus=self.bus,
            service=self.name,
            durable=durable or f"{self.queue_group}__{interface.name.replace('.', '_')}",
            metrics=self.metrics.endpoint(
                event_subject(interface.name, interface.version.major, qualifier=qualifier)
            ),
            max_deliver=self.settings.event_max_deliver,
            qualifier=qualifier,
            ack_wait=ack_wait,
            concurrency=concurrency,
        )
        self.subscriptions.append(subscription)
        if self.settings.deploy_color is None:
            await subscription.start()
        elif self._role is not None:  # else the role starts it once it joins production
            await self._role.adopt(subscription)
        return subscription

    async def _start_endpoint(self, endpoint: Endpoint) -> None:
        """Production intake at once; a blue/green instance only on its direct subject."""
        if self.settings.deploy_color is None:
            await endpoint.start()
        else:
            await endpoint.open_direct(
                direct_subject(
                    self.instance, endpoint.interface.name, endpoint.interface.version.major
                )
            )

    def discovery_metadata(self) -> dict[str, str]:
        """Extra ``$SRV.INFO`` metadata; the metrics port is advertised when serving."""
        metadata = {"queue_group": self.queue_group}
        if self.metrics_port is not None:
            metadata["metrics_port"] = str(self.metrics_port)
        return metadata

    async def stop(self) -> None:
        """Unsubscribe, finish running and queued requests within ``shutdown_grace``, answer
        what is left ``unavailable`` (queued ones unrun, running ones cancelled), then
        disconnect; returns within the grace and :data:`STOP_MARGIN` seconds."""
        if not self._started:
            return
        self._started = False
        grace_ends = time.monotonic() + self.settings.shutdown_grace
        await self._stop_file_watches()  # no reload while shutting down
        if self._role is not None:
            await self._role.stop()
        await asyncio.gather(*(endpoint.stop_intake() for endpoint in self.endpoints))
        for subscription in self.subscriptions:
            await subscription.stop()
        refused, cancelled = await self._slots.close(
            max(0.0, grace_ends - time.monotonic()),
            ErrorReply.of(
                ErrorCode.UNAVAILABLE,
                f"{self.name} is shutting down and could not start this request within its "
                "grace; retry the request",
            ),
        )
        if refused or cancelled:
            log.warning(
                "%s answered %d queued request(s) unavailable and cancelled %d still running "
                "at shutdown",
                self.name,
                refused,
                cancelled,
            )
        try:
            await self.shutdown()
        finally:
            await self._close_connection(grace_ends + STOP_MARGIN)

    def cancel_in_flight(self) -> int:
        """Cancel every request still being handled and answer every queued one
        ``unavailable`` (each gets an error reply); returns how many were running."""
        _refused, cancelled = self._slots.cancel_all(
            ErrorReply.of(
                ErrorCode.UNAVAILABLE,
                f"{self.name} cancelled its work in flight before starting this request; retry "
                "the request",
            )
        )
        return cancelled

    async def _stop_file_watches(self) -> None:
        watches, self._file_watches = self._file_watches, []
        for watch in watches:
            await watch.stop()

    async def _close_connection(self, give_up: float | None = None) -> None:
        """Stop what runs besides the endpoints and disconnect (by ``give_up``, a
        ``time.monotonic()``, when given)."""
        await self._stop_file_watches()
        if self._role is not None:
            role, self._role = self._role, None
            await role.stop()
        if self._config_task is not None:
            task, self._config_task = self._config_task, None
            task.cancel()
            await asyncio.wait({task})  # not suppress(CancelledError): it would eat our own
        if self._discovery is not None:
            with contextlib.suppress(Exception):
                await self._discovery.stop()
            self._discovery = None
        # The HTTP server's shutdown() waits up to half a second for its serving thread:
        # off the event loop, so other work in this process keeps running meanwhile.
        await asyncio.to_thread(self.metrics.close)
        if give_up is None:
            await self.bus.close()
        else:
            await self.bus.close(timeout=max(give_up - time.monotonic(), MIN_CLOSE))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- configuration ---------------------------------------------------------------

    async def _load_config(self, kv: KeyValue) -> None:
        try:
            entry = await kv.get(self.name)
        except Exception:  # no key yet: nothing configured
            return
        await self._apply_config(entry.value)

    async def _watch_config(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None or entry.value is None or entry.operation is not None:
                    continue  # the initial marker, or a delete
                await self._apply_config(entry.value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _apply_config(self, raw: bytes | None) -> None:
        if not raw:
            return
        try:
            config = json.loads(raw)
            if not isinstance(config, dict):
                raise ValueError("a JSON object is required")
        except ValueError as exc:
            log.error("ignored config for %s: not a JSON object (%s)", self.name, exc)
            return
        if config == self.config:
            return
        try:
            await self.on_config_change(config)
        except Exception:
            log.exception("%s rejected its new config; keeping the old one", self.name)
            return
        self.config = config
