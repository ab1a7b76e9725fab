"""The deployments KV: which version of each component is active, under which color.

Bucket ``agentbus_deployments``, key ``<component>``, a JSON value::

    {"component": "hello", "version": "2.0.0", "commit": "<sha>", "color": "green",
     "serving": ["blue", "green"], "target": "hello_service:HelloService",
     "service": "hello", "instances": ["hello-green-1a2b3c4d5e6f-0"],
     "runtime": {...}, "updated_at": "2026-11-21T09:00:00+00:00",
     "previous": {"version": "1.0.0", "commit": "<sha>", "color": "blue", ...}}

``color`` is the active pointer. ``serving`` lists the colors whose instances
take production traffic right now: both during a flip (the new color joins
before the old one leaves), else only ``color``; a record without it (a simpler
writer) means ``[color]``. ``runtime`` is what the backend needs to stop that
version (``null`` once stopped). Every write is a compare-and-set on the key's
revision, so two promoters cannot both win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbus.framework.errors import DeployError, DeploymentConflict
from agentbus.framework.jetstream import DEPLOYMENTS_BUCKET, key_value
from agentbus.interfaces.subjects import token
from agentbus.interfaces.validation import explain

WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code when an expected-last-sequence check fails."""

Color = Literal["blue", "green"]
COLORS: tuple[Color, Color] = ("blue", "green")


def other(color: Color) -> Color:
    """The color a new version takes: the one not active now."""
    return "green" if color == "blue" else "blue"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def shown(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut at ``limit`` characters: a value from the record, for a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def tampered(component: str, refusal: str) -> DeployError:
    """The error for a ``runtime`` that names what no version of ``component`` runs as."""
    return DeployError(
        f"refusing to {refusal}; the deployments record of {component} may have been "
        f"tampered with: check `agentbus deploy status {component}`, and fix or delete "
        f"its key in the agentbus_deployments bucket before you promote or roll back"
    )


RESTARTABLE_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A restarted version's recorded commit: a full sha (the record is input)."""
TARGET = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
"""``package.module:Class``."""


class DeployedVersion(BaseModel):
    """One version of a component, running (or once run) under one color."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str
    commit: str
    color: Color
    target: str = ""
    service: str = ""
    instances: tuple[str, ...] = ()
    runtime: dict[str, Any] | None = Field(
        default=None, description="What the backend needs to stop this version; null: stopped."
    )

    def check_restartable(self, component: str) -> None:
        """Raise :class:`DeployError` unless this version, read from the KV, may be started
        again: a ``package.module:Class`` at a full commit sha. (Which class a writer of the
        bucket may name is for the bucket's permissions to decide: any well-formed target
        at any commit of the repository passes here.)"""
        if not (RESTARTABLE_COMMIT.fullmatch(self.commit) and TARGET.fullmatch(self.target)):
            raise tampered(
                component,
                f"restart {shown(self.target)} at {shown(self.commit)}: a restart runs a "
                "package.module:Class at a full commit sha",
            )


class DeploymentRecord(DeployedVersion):
    """The value at key ``<component>``: the active version, the one before it, who serves."""

    component: str = ""
    serving: tuple[Color, ...] | None = None
    previous: DeployedVersion | None = None
    updated_at: str = Field(default_factory=now_iso)

    def serving_colors(self) -> frozenset[Color]:
        return frozenset(self.serving if self.serving is not None else (self.color,))

    def deployed_version(self) -> DeployedVersion:
        """The active version alone (what becomes ``previous`` after the next flip)."""
        fields = set(DeployedVersion.model_fields)
        return DeployedVersion.model_validate(self.model_dump(include=fields))


@dataclass(frozen=True, slots=True)
class Versioned:
    """A record and the KV revision it was read at (what a compare-and-set checks)."""

    record: DeploymentRecord
    revision: int


def parse_record(raw: bytes | None) -> DeploymentRecord | None:
    """The record in a KV value; ``None`` for an empty or deleted value."""
    if not raw:
        return None
    try:
        return DeploymentRecord.model_validate_json(raw)
    except ValidationError as exc:
        raise DeployError(f"the deployments record is not valid: {explain(exc)}") from exc


class DeploymentStore:
    """Reads and compare-and-sets records in the ``agentbus_deployments`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> DeploymentStore:
        return cls(await key_value(js, DEPLOYMENTS_BUCKET))

    async def get(self, component: str) -> Versioned | None:
        try:
            entry = await self.kv.get(token(component))
        except KeyNotFoundError:  # also raised for a deleted key
            return None
        record = parse_record(entry.value)
        if record is None or entry.revision is None:
            return None
        return Versioned(record, entry.revision)

    async def put(
        self, component: str, record: DeploymentRecord, *, revision: int | None
    ) -> Versioned:
        """Write ``record`` if the key is still at ``revision`` (``None``: does not exist yet)."""
        record = record.model_copy(update={"component": component, "updated_at": now_iso()})
        data = record.model_dump_json().encode()
        try:
            if revision is None:
                new_revision = await self.kv.create(token(component), data)
            else:
                new_revision = await self.kv.update(token(component), data, last=revision)
        except KeyWrongLastSequenceError as exc:
            raise DeploymentConflict(
                f"the deployment of {component} changed since revision {revision}: another "
                "promote or rollback ran; check `agentbus deploy status` and retry"
            ) from exc
        return Versioned(record, new_revision)

    async def point(
        self, component: str, *, version: str, commit: str, attempts: int = 10
    ) -> Versioned:
        """Make ``version`` at ``commit`` the active one without running anything: a
        pointer-only promotion, for components that are not services. It takes the color
        not active now (blue first) and keeps the active one as ``previous``; a
        compare-and-set lost to another writer is retried on a fresh read, ``attempts``
        times in all, then :class:`DeploymentConflict` is raised."""
        for attempt in range(1, attempts + 1):
            current = await self.get(component)
            active = current.record if current is not None else None
            record = DeploymentRecord(
                version=version,
                commit=commit,
                color=other(active.color) if active is not None else "blue",
                previous=active.deployed_version() if active is not None else None,
            )
            try:
                return await self.put(
                    component, record, revision=current.revision if current else None
                )
            except DeploymentConflict:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def delete(self, component: str, *, revision: int) -> None:
        """Delete the record if it is still at ``revision`` (a first deployment that failed)."""
        try:
            await self.kv.delete(token(component), last=revision)
        except BadRequestError as exc:  # nats-py raises the generic error here
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            raise DeploymentConflict(
                f"the deployment of {component} changed since revision {revision}"
            ) from exc
