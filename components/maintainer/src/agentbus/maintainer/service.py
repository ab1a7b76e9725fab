"""The maintainer service: one per component, ``maintainer-<component>``.

It consumes the events its agent-config monitors through durable JetStream
consumers named ``maintainer-<component>__<event>`` (so nothing is missed while
it is down; every maintainer gets every broadcast), decides with the ordered
rules (or asks the model gateway), records each decision on the audit stream,
then acts (worktree, dual-version tests, commit, promotion) or escalates. It
watches its escalations in KV and resumes approved work, also work approved
while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nats.js.kv import KeyValue
from pydantic import BaseModel

from agentbus.framework.config import Settings
from agentbus.framework.context import MessageContext
from agentbus.framework.errors import ConfigError
from agentbus.framework.events import EventSubscription
from agentbus.framework.service import Service
from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    Escalation,
    MaintainerDecision,
)
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.interfaces.message import Interface
from agentbus.interfaces.subjects import event_subject
from agentbus.maintainer.audit import now, record
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.decide import ask_model
from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.escalations import EscalationStore, TransitionRefused
from agentbus.maintainer.flows.change import ChangeReport
from agentbus.maintainer.flows.code_change import change_code, model_configured
from agentbus.maintainer.flows.dependency import update_dependency
from agentbus.maintainer.flows.interface_change import adopt_interface
from agentbus.maintainer.gitwork import integrate
from agentbus.maintainer.promote import (
    BlueGreenPromoter,
    KVPromoter,
    Promoter,
    PromotionRejected,
    current_deployment,
)
from agentbus.maintainer.rules import (
    Decision,
    Facts,
    dependency_facts,
    evaluate,
    interface_facts,
)

log = logging.getLogger("agentbus.maintainer")

COMPONENT_ENV = "AGENTBUS_MAINTAINER_COMPONENT"
"""The component folder, for ``agentbus up`` cluster files (``env = {...}``)."""

Event = InterfaceChanged | DependencyUpdated


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a final ``>`` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in ("*", have[index]):
            return False
    return len(want) == len(have)


def stable_id(*parts: str) -> str:
    """An id derived from its parts: a redelivered event makes the same records."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:16]


class Maintainer(Service):
    """A component's maintainer agent: decide, act (test both versions, promote), escalate."""

    name = "maintainer"
    version = "0.1.0"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        instance: str | None = None,
        url: str | None = None,
        queue_group: str | None = None,
        component_dir: Path | str | None = None,
        promoter: Promoter | None = None,
    ) -> None:
        directory = component_dir or os.environ.get(COMPONENT_ENV)
        if not directory:
            raise ConfigError(
                f"which component? pass --component components/<name> or set {COMPONENT_ENV}"
            )
        self.component = ComponentContext.load(Path(directory))
        self.name = f"maintainer-{self.component.name}"  # type: ignore[misc]
        self.description = f"maintainer of {self.component.name}"  # type: ignore[misc]
        super().__init__(settings, instance=instance, url=url, queue_group=queue_group)
        self.escalations = EscalationStore(self.bus)
        self.promoter: Promoter = promoter or self._default_promoter()
        limit = int(self.component.config["limits"]["concurrent_changes"])
        self._changes = asyncio.Semaphore(max(1, limit))
        self._watch_task: asyncio.Task[None] | None = None
        self._resumes: dict[str, asyncio.Task[None]] = {}

    def _default_promoter(self) -> Promoter:
        """Blue/green (processes or containers) when agent-config names a service, else the KV
        pointer."""
        config = self.component.config
        if config["deploy_strategy"] == "blue-green" and "service" in config:
            return BlueGreenPromoter(
                self.bus,
                component_dir=self.component.path,
                service=config["service"],
                settings=self.settings,
            )
        return KVPromoter(self.bus)

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
            if not self.monitors(interface):
                continue
            subject = event_subject(interface.name, interface.version.major)
            subscription = EventSubscription(
                interface,
                handler,
                bus=self.bus,
                service=self.name,
                durable=f"{self.name}__{interface.name.replace('.', '_')}",
                metrics=self.metrics.endpoint(subject),
                max_deliver=self.settings.event_max_deliver,
                ack_wait=60.0,
            )
            await subscription.start()
            self.subscriptions.append(subscription)
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
        facts = interface_facts(self.component, event)
        summary = (
            f"{event.interface} {event.old_version} -> {event.new_version} ({event.compatibility})"
        )
        await self._handle(event, facts, ctx.metadata.message_id, summary)

    async def on_dependency_updated(self, event: DependencyUpdated, ctx: MessageContext) -> None:
        facts = dependency_facts(self.component, event)
        summary = f"{event.package} {event.from_version} -> {event.to_version} ({facts.change})"
        await self._handle(event, facts, ctx.metadata.message_id, summary)

    async def decide(self, event: Event, facts: Facts) -> Decision:
        decision = evaluate(self.component.config, facts)
        if decision.action == "ask-model":
            decision = await ask_model(self.bus, self.component, facts, event.model_dump_json())
        if decision.action == "act" and facts.compatibility == "breaking":
            return Decision(
                "escalate", "a breaking interface change always needs approval", "builtin:breaking"
            )
        if decision.action == "act" and facts.change in ("major", "downgrade"):
            return Decision(
                "escalate",
                f"a {facts.change} version change always needs approval",
                f"builtin:{facts.change}",
            )
        return decision

    async def _handle(self, event: Event, facts: Facts, event_id: str, summary: str) -> None:
        decision = await self.decide(event, facts)
        first = {"ignore": "ignored", "escalate": "escalated", "act": "acting"}[decision.action]
        trail = _Trail(self, facts.event, event_id, summary)
        if decision.action == "act" and self.component.autonomy == "observe":
            first = "observed"
        await trail.record(decision, "decision", first)
        if decision.action == "ignore" or first == "observed":
            return
        if decision.action == "escalate":
            resume = "code-change" if facts.compatibility == "breaking" else "update"
            await self._escalate(trail, event, decision, resume, {}, stage="decision")
            return
        await self._act(trail, event, facts, decision, approved=False, stage="outcome")

    # -- acting ------------------------------------------------------------------------

    async def _act(
        self,
        trail: _Trail,
        event: Event,
        facts: Facts,
        decision: Decision,
        *,
        approved: bool,
        stage: str,
    ) -> str:
        """Run the flow for ``event``, then promote or escalate; return what happened."""
        async with self._changes:
            try:
                if isinstance(event, DependencyUpdated):
                    report = await update_dependency(self.component, event, decision)
                else:
                    report = await adopt_interface(self.component, event, decision)
            except FlowError as exc:
                failed = Decision("escalate", f"the change could not be made: {exc}", decision.rule)
                escalation = await self._escalate(
                    trail, event, failed, "update", {"error": str(exc)}, stage=stage
                )
                await trail.record(decision, stage, "failed", {"escalation": escalation.id})
                return f"failed: {exc}"
            return await self._finish(
                trail, event, decision, report, approved=approved, stage=stage
            )

    async def _finish(
        self,
        trail: _Trail,
        event: Event,
        decision: Decision,
        report: ChangeReport,
        *,
        approved: bool,
        stage: str,
    ) -> str:
        """Promote a change whose tests hold, or escalate it with the report."""
        details: dict[str, Any] = {"report": report.as_json()}
        if not report.ok:
            broken = ", ".join(report.matrix.broken[:5]) or "no test passed on the new version"
            failed = Decision(
                "escalate",
                f"the new version broke tests that passed before: {broken}",
                decision.rule,
            )
            escalation = await self._escalate(
                trail, event, failed, "code-change", report.as_json(), stage=stage
            )
            await trail.record(failed, stage, "escalated", {**details, "escalation": escalation.id})
            return f"tests broke; escalated as {escalation.id}"
        ask = None
        if not approved and self.component.autonomy == "propose":
            ask = "old and new versions pass; autonomy 'propose' asks before promoting"
        elif not approved and (waited := await self._cooling_down()) is not None:
            ask = (
                f"old and new versions pass, but the last promotion was {waited:.0f} s ago "
                f"(cooldown {self.component.config['limits']['cooldown_seconds']} s)"
            )
        if ask is not None:
            proposal = Decision("escalate", ask, decision.rule)
            escalation = await self._escalate(
                trail, event, proposal, "promote", report.as_json(), stage=stage
            )
            await trail.record(
                proposal, stage, "proposed", {**details, "escalation": escalation.id}
            )
            return f"proposed as {escalation.id}"
        return await self._promote(trail, event, decision, report.as_json(), details, stage=stage)

    async def _cooling_down(self) -> float | None:
        """Seconds since the last promotion when that is within ``limits.cooldown_seconds``."""
        cooldown = float(self.component.config["limits"]["cooldown_seconds"])
        if cooldown <= 0:
            return None
        record = await current_deployment(self.bus, self.component.name)
        if not record or not record.get("updated_at"):
            return None
        since = (datetime.now(UTC) - datetime.fromisoformat(record["updated_at"])).total_seconds()
        return since if since < cooldown else None

    async def _promote(
        self,
        trail: _Trail,
        event: Event,
        decision: Decision,
        report: dict[str, Any],
        details: dict[str, Any],
        *,
        stage: str,
    ) -> str:
        try:
            result = await self.promoter.promote(
                self.component.name, str(report["commit"]), str(report["new_version"])
            )
        except PromotionRejected as exc:
            rejected = Decision("escalate", str(exc), decision.rule)
            escalation = await self._escalate(
                trail,
                event,
                rejected,
                "code-change",
                report,
                stage=stage,
            )
            details = {**details, "escalation": escalation.id}
            await trail.record(rejected, stage, "rejected", details)
            return f"not promoted: {exc}; escalated as {escalation.id}"
        merged = integrate(self.component.path, str(report["branch"]))
        if merged:
            self.component = ComponentContext.load(self.component.path)
        details = {
            **details,
            "color": result.color,
            "previous": result.previous,
            "commit": result.commit,
            "version": result.version,
            "merged": merged,
        }
        await trail.record(decision, stage, "promoted", details)
        return f"promoted {result.version} ({result.commit[:8]}) as {result.color}"

    async def _escalate(
        self,
        trail: _Trail,
        event: Event,
        decision: Decision,
        resume: str,
        report: dict[str, Any],
        *,
        stage: str,
    ) -> Escalation:
        escalation = Escalation(
            id=stable_id(trail.event_id, self.component.name, stage, resume),
            component=self.component.name,
            reason=decision.reason,
            rule=decision.rule,
            event=trail.event,
            payload=event.model_dump(mode="json"),
            report=report,
            resume=resume,
            target=str(self.component.config["escalation_target"]),
            created_at=now(),
        )
        return await self.escalations.create(escalation)

    # -- escalations -------------------------------------------------------------------

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None or not entry.value or entry.operation is not None:
                    continue
                escalation = Escalation.model_validate_json(entry.value, extra="ignore")
                if escalation.status in ("approved", "resuming") and (
                    escalation.id not in self._resumes
                ):
                    task = asyncio.get_running_loop().create_task(self._resume(escalation))
                    self._resumes[escalation.id] = task
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _resume(self, escalation: Escalation) -> None:
        """Take an approved escalation (or one a stopped instance left resuming) and finish it."""
        try:
            if escalation.status == "approved":
                escalation = await self.escalations.transition(
                    escalation.id, ["approved"], "resuming"
                )
        except TransitionRefused:
            return
        try:
            note = await self._resume_work(escalation)
        except Exception as exc:
            log.exception("%s: resuming escalation %s failed", self.name, escalation.id)
            await self.escalations.transition(
                escalation.id, ["resuming"], "failed", note=f"{type(exc).__name__}: {exc}"
            )
            return
        await self.escalations.transition(escalation.id, ["resuming"], "done", note=note)

    def _event_of(self, escalation: Escalation) -> tuple[Event, Facts]:
        if escalation.event == DEPENDENCY_UPDATED.name:
            dependency = DependencyUpdated.model_validate(escalation.payload)
            return dependency, dependency_facts(self.component, dependency)
        change = InterfaceChanged.model_validate(escalation.payload)
        return change, interface_facts(self.component, change)

    async def _resume_work(self, escalation: Escalation) -> str:
        event, facts = self._event_of(escalation)
        trail = _Trail(
            self, facts.event, f"escalation-{escalation.id}", f"approved: {escalation.id}"
        )
        who = escalation.resolved_by or "someone"
        approved = Decision("act", f"approved by {who}: {escalation.reason}", escalation.rule)
        stage = "resumed"
        if escalation.resume == "promote":
            return await self._promote(
                trail,
                event,
                approved,
                dict(escalation.report),
                {"escalation": escalation.id},
                stage=stage,
            )
        if escalation.resume == "update":
            return await self._act(trail, event, facts, approved, approved=True, stage=stage)
        if not await model_configured(self.bus, self.component.model):
            note = (
                "approved, but no model is configured (alias "
                f"{self.component.model!r} is not in model.catalog): a person must change the "
                "code"
            )
            if escalation.report.get("branch"):
                note += f", starting from branch {escalation.report['branch']}"
            await trail.record(approved, stage, "needs-human", {"escalation": escalation.id})
            return note
        async with self._changes:
            try:
                report = await change_code(self.bus, self.component, escalation, approved)
            except FlowError as exc:
                await trail.record(approved, stage, "failed", {"error": str(exc)})
                return f"the code-change workflow failed: {exc}"
            return await self._finish(trail, event, approved, report, approved=True, stage=stage)


class _Trail:
    """Writes one event's decision records (ids derived from the event: no duplicates)."""

    def __init__(self, maintainer: Maintainer, event: str, event_id: str, summary: str) -> None:
        self.maintainer = maintainer
        self.event = event
        self.event_id = event_id
        self.summary = summary

    async def record(
        self, decision: Decision, stage: str, outcome: str, details: dict[str, Any] | None = None
    ) -> MaintainerDecision:
        component = self.maintainer.component.name
        entry = MaintainerDecision(
            id=stable_id(self.event_id, component, stage, outcome),
            component=component,
            event=self.event,
            event_id=self.event_id,
            summary=self.summary,
            action=decision.action,
            reason=decision.reason,
            rule=decision.rule,
            outcome=outcome,
            details=_jsonable(details or {}),
            at=now(),
        )
        await record(self.maintainer.bus, entry)
        log.info(
            "%s: %s -> %s/%s (%s) %s",
            self.maintainer.name,
            self.summary,
            decision.action,
            outcome,
            decision.rule,
            decision.reason,
        )
        return entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


__all__ = ["COMPONENT_ENV", "Maintainer", "subject_matches"]
