"""The maintainer service: one per component, ``maintainer-<component>``; the bus side.

It consumes the events its agent-config monitors through durable JetStream
consumers named ``maintainer-<component>__<event>`` (so nothing is missed while
it is down; every maintainer gets every broadcast) and hands each to its
:class:`Pipeline` (decide, record, act or escalate: ``pipeline``). It watches its
escalations in KV and has the pipeline resume approved work, also work approved
while it was down. Started with a deploy color, it consumes only while that
color serves (the framework's ``Service.subscribe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nats.js.kv import KeyValue
from pydantic import ValidationError

from agentbus.framework import ConfigError, MessageContext, Service, Settings
from agentbus.framework.auth import Grants
from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    Escalation,
)
from agentbus.interfaces.catalog.model import CATALOG, GENERATE
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.interfaces.catalog.workflows import WORKFLOWS_GET, WORKFLOWS_START
from agentbus.interfaces.message import Interface
from agentbus.interfaces.subjects import event_subject
from agentbus.interfaces.validation import explain
from agentbus.maintainer.audit import record
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.deployers import Deployer, deployer_for
from agentbus.maintainer.escalations import EscalationStore
from agentbus.maintainer.peers import BusPeers, Peers
from agentbus.maintainer.permissions import (
    COMPONENT_ENV,
    deployed_grants,
    durable,
    maintainer_grants,
)
from agentbus.maintainer.pipeline import Event, Pipeline
from agentbus.maintainer.rules import Decision, Facts

log = logging.getLogger("agentbus.maintainer")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a final ``>`` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in ("*", have[index]):
            return False
    return len(want) == len(have)


class Maintainer(Service):
    """A component's maintainer agent: decide, act (test both versions, promote), escalate.

    ``deployer`` makes a tested commit live (default: blue/green when agent-config
    names a service, else the deployments pointer alone); ``peers`` are the other
    services the pipeline asks (default: over this service's bus).
    """

    name = "maintainer"
    version = "0.1.0"
    uses = (GENERATE, CATALOG, WORKFLOWS_START, WORKFLOWS_GET)

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> Grants:
        return maintainer_grants(name, environment)

    @classmethod
    def deployed_identities(cls, name: str, environment: Mapping[str, str]) -> dict[str, Grants]:
        return deployed_grants(environment)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        instance: str | None = None,
        url: str | None = None,
        queue_group: str | None = None,
        component_dir: Path | str | None = None,
        deployer: Deployer | None = None,
        peers: Peers | None = None,
    ) -> None:
        directory = component_dir or os.environ.get(COMPONENT_ENV)
        if not directory:
            raise ConfigError(
                f"which component? pass --component components/<name> or set {COMPONENT_ENV}"
            )
        component = ComponentContext.load(Path(directory))
        super().__init__(
            settings,
            name=f"maintainer-{component.name}",
            description=f"maintainer of {component.name}",
            instance=instance,
            url=url,
            queue_group=queue_group,
        )
        self.pipeline = Pipeline(
            component,
            escalations=EscalationStore(self.bus),
            record=functools.partial(record, self.bus),
            deployer=deployer or deployer_for(self.bus, component, self.settings),
            peers=peers or BusPeers(self.bus),
            name=self.name,
            decide=self.decide,
        )
        self._watch_task: asyncio.Task[None] | None = None
        self._resumes: dict[str, asyncio.Task[None]] = {}

    @property
    def component(self) -> ComponentContext:
        """The component as the pipeline knows it now (reloaded after a merged change)."""
        return self.pipeline.component

    @component.setter
    def component(self, component: ComponentContext) -> None:
        self.pipeline.component = component

    @property
    def deployer(self) -> Deployer:
        return self.pipeline.deployer

    @property
    def escalations(self) -> EscalationStore:
        return self.pipeline.escalations

    async def decide(self, event: Event, facts: Facts) -> Decision:
        """The pipeline's decision; a subclass may override it (a slower or other agent)."""
        return await self.pipeline.decide(event, facts)

    # -- lifecycle ---------------------------------------------------------------------

    def monitors(self, interface: Interface[Any, Any]) -> bool:
        subject = event_subject(interface.name, interface.version.major)
        return any(subject_matches(p, subject) for p in self.component.config["monitored_subjects"])

    async def initialize(self) -> None:
        handlers = (
            (INTERFACE_CHANGED, self.on_interface_changed),
            (DEPENDENCY_UPDATED, self.on_dependency_updated),
        )
        for interface, handler in handlers:
            if self.monitors(interface):
                await self.subscribe(
                    interface,
                    handler,
                    durable=durable(self.name, interface.name),
                    ack_wait=60.0,
                )
        kv = await self.escalations.kv()
        watcher = await kv.watch(f"{self.component.name}.*")
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(watcher))

    async def shutdown(self) -> None:
        tasks = [t for t in (self._watch_task, *self._resumes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- events ------------------------------------------------------------------------

    async def on_interface_changed(self, event: InterfaceChanged, ctx: MessageContext) -> None:
        await self.pipeline.handle(event, ctx.metadata.message_id)

    async def on_dependency_updated(self, event: DependencyUpdated, ctx: MessageContext) -> None:
        await self.pipeline.handle(event, ctx.metadata.message_id)

    # -- escalations -------------------------------------------------------------------

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        """Resume each escalation that is (or becomes) approved, once per instance."""
        try:
            async for entry in watcher:
                if entry is None or not entry.value or entry.operation is not None:
                    continue
                try:
                    escalation = Escalation.model_validate_json(entry.value, extra="ignore")
                except ValidationError as exc:  # KV is input: one bad value must not end the watch
                    log.error("ignored an unreadable escalation %s: %s", entry.key, explain(exc))
                    continue
                if escalation.status in ("approved", "resuming") and (
                    escalation.id not in self._resumes
                ):
                    task = asyncio.get_running_loop().create_task(self.pipeline.resume(escalation))
                    self._resumes[escalation.id] = task
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]


__all__ = ["COMPONENT_ENV", "Event", "Maintainer", "subject_matches"]
