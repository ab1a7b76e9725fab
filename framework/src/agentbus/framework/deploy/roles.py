"""How a blue/green instance serves or stops serving, as the deployments KV says.

An instance started with ``AGENTBUS_DEPLOY_COLOR`` (and ``AGENTBUS_DEPLOY_COMPONENT``,
default: the service name) always answers on its own direct subjects
(``agentbus.direct.<instance>.<interface>.v<major>``), where a promoter smoke-tests
it. It joins the production subjects (the service's queue group) and its event
subscriptions only while its color is in the record's ``serving`` colors, and
leaves them by draining (what was delivered is still answered) when it is not.
A new queue group on a production subject would get a copy of every request,
which is why a green instance never subscribes there before it is promoted.

The state shows in ``$SRV.PING`` / ``$SRV.INFO`` metadata (``deploy_color``,
``deploy_serving``), which is how a promoter knows a join or leave finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from agentbus.framework.deploy.state import Color, DeploymentRecord, DeploymentStore, parse_record
from agentbus.framework.endpoint import Endpoint
from agentbus.framework.errors import DeployError
from agentbus.framework.events import EventSubscription

log = logging.getLogger("agentbus.deploy")

SERVING_KEY = "deploy_serving"
"""``$SRV`` metadata key: ``"true"`` while the instance is in the production queue group."""
COLOR_KEY = "deploy_color"
COMPONENT_KEY = "deploy_component"


class DeployRole:
    """Joins and leaves production intake for one instance, following the KV record."""

    def __init__(
        self,
        component: str,
        color: Color,
        *,
        client: Client,
        endpoints: Sequence[Endpoint],
        subscriptions: Sequence[EventSubscription],
        metadata: dict[str, str],
    ) -> None:
        self.component = component
        self.color = color
        self._client = client
        self._endpoints = endpoints
        self._subscriptions = subscriptions
        self._metadata = metadata
        self._metadata.update({COMPONENT_KEY: component, COLOR_KEY: color, SERVING_KEY: "false"})
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.serving = False

    async def start(self, js: JetStreamContext) -> None:
        """Apply the current record, then follow its changes."""
        store = await DeploymentStore.open(js)
        current = await store.get(self.component)
        await self.apply(current.record if current is not None else None)
        # Watch here, not in the task (see Service.start: a cancellation during set-up is lost).
        watcher = await store.kv.watch(self.component, include_history=False)
        self._task = asyncio.get_running_loop().create_task(self._follow(watcher))

    async def stop(self) -> None:
        """Stop following the record (intake itself stops with the service)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.wait({task})

    async def apply(self, record: DeploymentRecord | None) -> None:
        """Join or leave so that this instance serves iff its color is serving."""
        wanted = record is not None and self.color in record.serving_colors()
        async with self._lock:
            if wanted and not self.serving:
                await self._join()
            elif not wanted and self.serving:
                await self._leave()

    async def adopt(self, subscription: EventSubscription) -> None:
        """A subscription added after the role started: consume now if this color serves
        (the service already lists it among the subscriptions this role follows)."""
        async with self._lock:
            if self.serving:
                await subscription.start()

    async def _join(self) -> None:
        for endpoint in self._endpoints:
            if not endpoint.serving:
                await endpoint.start()
        for subscription in self._subscriptions:
            await subscription.start()
        await self._client.flush()  # the server has our interest before we say we serve
        self.serving = True
        self._metadata[SERVING_KEY] = "true"
        log.info("%s (%s) joined production intake", self.component, self.color)

    async def _leave(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.leave()
        for subscription in self._subscriptions:
            await subscription.stop()
        self.serving = False
        self._metadata[SERVING_KEY] = "false"
        log.info("%s (%s) left production intake (drained)", self.component, self.color)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:
                    continue  # the end of the initial values
                if entry.operation is not None:  # a delete or purge: keep serving as we are
                    log.warning("the deployments record of %s was deleted", self.component)
                    continue
                try:
                    await self.apply(parse_record(entry.value))
                except DeployError:
                    log.exception("ignored an unreadable deployments record for %s", self.component)
                except Exception:  # keep following: the next record may be applied fine
                    log.exception("could not switch %s (%s)", self.component, self.color)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
