"""Escalations: state in the KV bucket ``agentbus_escalations``, history on a stream.

The state of escalation ``<id>`` of ``<component>`` is the JSON at key
``<component>.<id>``: ``open`` -> ``approved`` | ``rejected`` (by a person, with
``agentbus escalations approve|reject``) -> ``resuming`` -> ``done`` | ``failed``
(by the maintainer). Every transition is compare-and-set, so a person and a
maintainer (or two of either) never both win, and every state is also published
to ``agentbus.escalations.<component>`` (stream ``AGENTBUS_ESCALATIONS``) as the
history. Both live in JetStream's file storage: they survive restarts of the
maintainer and of NATS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from agentbus.framework import (
    ESCALATIONS,
    Bus,
    ConfigError,
    by_prefix,
    declare_stream,
    key_value,
    to_json,
)
from agentbus.interfaces.catalog.maintenance import Escalation, EscalationStatus
from agentbus.interfaces.metadata import MSG_ID
from agentbus.interfaces.subjects import escalation_subject
from agentbus.interfaces.validation import explain
from agentbus.maintainer.audit import now

ESCALATIONS_BUCKET = "agentbus_escalations"

log = logging.getLogger("agentbus.maintainer.escalations")


class EscalationNotFound(LookupError):
    """No escalation has that id."""


class TransitionRefused(RuntimeError):
    """The escalation is not in a state that allows the change (someone else decided)."""


def key(component: str, escalation_id: str) -> str:
    return f"{component}.{escalation_id}"


def decision_key(component: str, escalation_id: str) -> str:
    """``<component>.<id>.decision``: the operator's decision. A maintainer may write only
    ``<component>.*`` (one token after its component), so it can change its escalation's
    status but never write this key: a resume needs it (:meth:`EscalationStore.decision_of`)."""
    return f"{key(component, escalation_id)}.{DECISION}"


DECISION = "decision"


class EscalationStore:
    """Create, list, find and move escalations between states."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        """The bucket (and the history stream), declared on first use: the CLI may be the
        first to touch them."""
        if self._kv is None:
            await declare_stream(self._bus.js, ESCALATIONS, self._bus.settings.jetstream_storage)
            self._kv = await key_value(self._bus.js, ESCALATIONS_BUCKET, history=10)
        return self._kv

    async def _publish(self, escalation: Escalation) -> None:
        await self.kv()
        await self._bus.js.publish(
            escalation_subject(escalation.component),
            to_json(escalation),
            headers={MSG_ID: f"{escalation.id}:{escalation.status}"},
            stream=ESCALATIONS.name,
        )

    async def create(self, escalation: Escalation) -> Escalation:
        """Store a new escalation; one with the same id (a redelivered event) is kept as is."""
        kv = await self.kv()
        try:
            await kv.create(key(escalation.component, escalation.id), to_json(escalation))
        except KeyWrongLastSequenceError:
            existing, _ = await self._get_key(key(escalation.component, escalation.id))
            return existing
        await self._publish(escalation)
        return escalation

    async def keys(self, component: str | None = None) -> list[str]:
        kv = await self.kv()
        try:
            found: Iterable[str] = await kv.keys()
        except NoKeysError:
            return []
        prefix = f"{component}." if component else ""
        return sorted(k for k in found if k.startswith(prefix) and k.count(".") == 1)

    async def list(
        self, component: str | None = None, status: Iterable[str] | None = None
    ) -> list[Escalation]:
        wanted = set(status) if status is not None else None
        found = []
        for name in await self.keys(component):
            try:
                escalation, _ = await self._get_key(name)
            except EscalationNotFound:
                continue
            except ValidationError as exc:  # KV is input: list the readable ones
                log.warning("skipped the unreadable escalation %s: %s", name, explain(exc))
                continue
            if wanted is None or escalation.status in wanted:
                found.append(escalation)
        return sorted(found, key=lambda e: e.created_at)

    async def _get_key(self, name: str) -> tuple[Escalation, int]:
        kv = await self.kv()
        try:
            entry = await kv.get(name)
        except KeyNotFoundError:
            raise EscalationNotFound(name) from None
        if not entry.value:
            raise EscalationNotFound(name)
        return Escalation.model_validate_json(entry.value, extra="ignore"), entry.revision or 0

    async def find(self, escalation_id: str) -> tuple[Escalation, int]:
        """By id (or a unique prefix of it), in any component."""
        keys = {k.split(".", 1)[1]: k for k in await self.keys()}
        try:
            found = by_prefix(escalation_id, keys, "escalation", listed_by="escalations list")
        except ConfigError as exc:  # none, or more than one: the message says which
            raise EscalationNotFound(str(exc)) from None
        return await self._get_key(keys[found])

    async def decide(
        self, escalation_id: str, decision: Literal["approve", "reject"], *, by: str, note: str
    ) -> Escalation:
        """Record the decision on an open escalation (once: its key is created, never
        replaced), then move the escalation to ``approved`` or ``rejected``. Only an
        identity that may write decision keys (the operator) can."""
        status: EscalationStatus = "approved" if decision == "approve" else "rejected"
        current, _ = await self.find(escalation_id)
        if current.status != "open":
            raise TransitionRefused(
                f"escalation {current.id} is {current.status}; only open can become {status}"
            )
        record = {
            "decision": decision,
            "decided_by": by,
            "identity": self._bus.identity,
            "note": note,
            "decided_at": now(),
        }
        kv = await self.kv()
        try:
            await kv.create(
                decision_key(current.component, current.id), json.dumps(record).encode()
            )
        except KeyWrongLastSequenceError:
            # Decided before: the same decision finishes what a stopped CLI left (the record
            # still open), another one is refused.
            if await self.decision_of(current) != decision:
                raise TransitionRefused(
                    f"escalation {current.id} was decided already, otherwise"
                ) from None
        return await self.transition(current.id, ["open"], status, resolved_by=by, note=note)

    async def decision_of(self, escalation: Escalation) -> str | None:
        """``approve`` / ``reject`` as the operator decided ``escalation``, or ``None`` (not
        decided, or a decision key that does not read as one)."""
        kv = await self.kv()
        try:
            entry = await kv.get(decision_key(escalation.component, escalation.id))
        except KeyNotFoundError:
            return None
        try:
            decision = json.loads(entry.value or b"").get("decision")
        except (ValueError, AttributeError):
            return None
        return decision if decision in ("approve", "reject") else None

    async def transition(
        self,
        escalation_id: str,
        allowed_from: Iterable[EscalationStatus],
        to: EscalationStatus,
        **changes: Any,
    ) -> Escalation:
        """Move to ``to`` if the current status is in ``allowed_from`` (compare-and-set)."""
        allowed = set(allowed_from)
        for _ in range(10):
            current, revision = await self.find(escalation_id)
            if current.status not in allowed:
                raise TransitionRefused(
                    f"escalation {current.id} is {current.status}; only "
                    f"{' / '.join(sorted(allowed))} can become {to}"
                )
            if to in ("approved", "rejected", "done", "failed"):
                changes.setdefault("resolved_at", now())
            updated = current.model_copy(update={"status": to, **changes})
            kv = await self.kv()
            try:
                await kv.update(key(updated.component, updated.id), to_json(updated), last=revision)
            except KeyWrongLastSequenceError:
                continue
            await self._publish(updated)
            return updated
        raise TransitionRefused(f"escalation {escalation_id} kept changing; try again")


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)
