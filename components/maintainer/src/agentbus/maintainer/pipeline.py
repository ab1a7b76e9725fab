"""One component's maintenance, event by event: decide -> act -> promote, or escalate; resume.

An event is decided with the ordered rules (or the model), the decision is
recorded, then the flow runs (worktree, tests on the old and the new version,
commit) and a change whose tests hold is made live by the :class:`Deployer`, or
escalated with its report. An approved escalation resumes where it stopped:
promote, redo the update, or run a code-change workflow.

No ``Service`` here: the pipeline gets its collaborators (escalations, the audit
recorder, the deployer, the other services as :class:`Peers`) and is driven by
the maintainer service (``service``), which owns subscriptions and the watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    Escalation,
    EscalationStatus,
)
from agentbus.interfaces.catalog.system import InterfaceChanged
from agentbus.maintainer.audit import now
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.deployers import Deployer, PromotionRejected
from agentbus.maintainer.errors import FlowError
from agentbus.maintainer.escalations import EscalationStore, TransitionRefused
from agentbus.maintainer.flows.change import ChangeReport
from agentbus.maintainer.flows.dependency import update_dependency
from agentbus.maintainer.flows.interface_change import adopt_interface
from agentbus.maintainer.gitwork import integrate
from agentbus.maintainer.peers import Peers
from agentbus.maintainer.rules import (
    Decision,
    Facts,
    dependency_facts,
    evaluate,
    interface_facts,
)
from agentbus.maintainer.trail import Record, Trail, stable_id

log = logging.getLogger("agentbus.maintainer")

Event = InterfaceChanged | DependencyUpdated
Decide = Callable[[Event, Facts], Awaitable[Decision]]

PROMOTED = "promoted "
"""How the note of a promotion starts: the one outcome of resumed work that is ``done``."""


class Pipeline:
    """Handles ``component``'s events end to end and resumes its approved escalations.

    ``decide`` replaces :meth:`decide` (a service subclass that decides differently);
    ``name`` is what the log lines say (the maintainer's service name).
    """

    def __init__(
        self,
        component: ComponentContext,
        *,
        escalations: EscalationStore,
        record: Record,
        deployer: Deployer,
        peers: Peers,
        name: str | None = None,
        decide: Decide | None = None,
    ) -> None:
        self.component = component
        self.escalations = escalations
        self.deployer = deployer
        self.peers = peers
        self.name = name or f"maintainer-{component.name}"
        self._record = record
        self._decide = decide or self.decide
        limit = int(component.config["limits"]["concurrent_changes"])
        self._changes = asyncio.Semaphore(max(1, limit))

    def _trail(self, event: str, event_id: str, summary: str) -> Trail:
        return Trail(
            self._record,
            maintainer=self.name,
            component=self.component.name,
            event=event,
            event_id=event_id,
            summary=summary,
        )

    # -- deciding ----------------------------------------------------------------------

    async def handle(self, event: Event, event_id: str) -> None:
        """Decide on ``event`` (id ``event_id``), record it, then act or escalate."""
        if isinstance(event, InterfaceChanged):
            facts = interface_facts(self.component, event)
            summary = (
                f"{event.interface} {event.old_version} -> {event.new_version} "
                f"({event.compatibility})"
            )
        else:
            facts = dependency_facts(self.component, event)
            summary = f"{event.package} {event.from_version} -> {event.to_version} ({facts.change})"
        decision = await self._decide(event, facts)
        first = {"ignore": "ignored", "escalate": "escalated", "act": "acting"}[decision.action]
        trail = self._trail(facts.event, event_id, summary)
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

    async def decide(self, event: Event, facts: Facts) -> Decision:
        """The rules (or the model); a breaking or major change never acts unapproved."""
        decision = evaluate(self.component.config, facts)
        if decision.action == "ask-model":
            decision = await self.peers.ask_model(self.component, facts, event.model_dump_json())
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

    # -- acting ------------------------------------------------------------------------

    async def _act(
        self,
        trail: Trail,
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
        trail: Trail,
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
        last = await self.peers.last_promoted_at(self.component.name)
        if last is None:
            return None
        since = (datetime.now(UTC) - last).total_seconds()
        return since if since < cooldown else None

    async def _promote(
        self,
        trail: Trail,
        event: Event,
        decision: Decision,
        report: dict[str, Any],
        details: dict[str, Any],
        *,
        stage: str,
    ) -> str:
        try:
            result = await self.deployer.deploy(
                self.component.name, str(report["commit"]), str(report["new_version"])
            )
        except PromotionRejected as exc:
            rejected = Decision("escalate", str(exc), decision.rule)
            escalation = await self._escalate(
                trail, event, rejected, "code-change", report, stage=stage
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
        return f"{PROMOTED}{result.version} ({result.commit[:8]}) as {result.color}"

    async def _escalate(
        self,
        trail: Trail,
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

    # -- resuming ----------------------------------------------------------------------

    async def resume(self, escalation: Escalation) -> None:
        """Take an approved escalation (or one a stopped instance left resuming) and finish
        it: ``done`` when the approved work was promoted, else ``failed`` with the reason (an
        error, no model for a code change, tests that broke or a promotion refused, which
        escalate again); the note says what happened either way.

        Only an escalation the operator approved is resumed: its status is the maintainer's
        own record, which the maintainer itself may write, the decision key is not."""
        if await self.escalations.decision_of(escalation) != "approve":
            log.error(
                "%s: escalation %s is %s but the operator did not approve it "
                "(`agentbus escalations approve %s`); it is not resumed",
                self.name,
                escalation.id,
                escalation.status,
                escalation.id,
            )
            return
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
        # "done" only when something was done: the person who approved waits for this word
        outcome: EscalationStatus = "done" if note.startswith(PROMOTED) else "failed"
        await self.escalations.transition(escalation.id, ["resuming"], outcome, note=note)

    def _event_of(self, escalation: Escalation) -> tuple[Event, Facts]:
        if escalation.event == DEPENDENCY_UPDATED.name:
            dependency = DependencyUpdated.model_validate(escalation.payload)
            return dependency, dependency_facts(self.component, dependency)
        change = InterfaceChanged.model_validate(escalation.payload)
        return change, interface_facts(self.component, change)

    async def _resume_work(self, escalation: Escalation) -> str:
        event, facts = self._event_of(escalation)
        trail = self._trail(
            facts.event, f"escalation-{escalation.id}", f"approved: {escalation.id}"
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
        if not await self.peers.model_configured(self.component.model):
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
                report = await self.peers.change_code(self.component, escalation, approved)
            except FlowError as exc:
                await trail.record(approved, stage, "failed", {"error": str(exc)})
                return f"the code-change workflow failed: {exc}"
            return await self._finish(trail, event, approved, report, approved=True, stage=stage)


__all__ = ["Decide", "Event", "Pipeline"]
