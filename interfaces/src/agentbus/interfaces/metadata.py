"""Message metadata, carried in NATS headers.

=================  ============================================================
header             contents
=================  ============================================================
``Agentbus``       ``key=value`` pairs joined by ``;`` (the style of W3C ``tracestate``):
                   ``id`` message id, ``src`` ``component/instance@version``,
                   ``if`` ``interface@version``, ``t`` send time in Unix milliseconds,
                   ``corr`` correlation id (omitted when it equals ``id``),
                   ``cause`` id of the message that caused this one (omitted for roots)
``traceparent``    W3C trace context, under its standard name
``Nats-Msg-Id``    the message id again, on JetStream publishes: the stream de-duplicates on it
=================  ============================================================

One compact header instead of one per field, because nats-py encodes and parses
each header in Python at about 4 µs per header per hop; the request path has a
latency budget (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Self

from agentbus.interfaces.semver import Version

AGENTBUS = "Agentbus"
TRACEPARENT = "traceparent"
MSG_ID = "Nats-Msg-Id"


def new_id() -> str:
    """A random 128-bit id in hex."""
    return os.urandom(16).hex()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent a message."""

    component: str
    instance: str = ""
    version: str = ""

    def __str__(self) -> str:
        text = self.component
        if self.instance:
            text += f"/{self.instance}"
        if self.version:
            text += f"@{self.version}"
        return text

    @classmethod
    def parse(cls, text: str) -> Source:
        rest, _, version = text.partition("@")
        component, _, instance = rest.partition("/")
        return cls(component, instance, version)


UNKNOWN_SOURCE = Source("unknown")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """W3C ``traceparent``: version 00, trace id, parent (span) id, flags."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceContext:
        return cls(os.urandom(16).hex(), os.urandom(8).hex())

    @classmethod
    def parse(cls, header: str) -> TraceContext | None:
        parts = header.strip().split("-")
        if len(parts) != 4 or parts[0] != "00":
            return None
        _, trace_id, span_id, flags = parts
        if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
            return None
        try:
            int(trace_id, 16), int(span_id, 16), int(flags, 16)
        except ValueError:
            return None
        if trace_id == "0" * 32 or span_id == "0" * 16:
            return None
        return cls(trace_id, span_id, flags)

    def child(self) -> TraceContext:
        """Same trace, new span."""
        return TraceContext(self.trace_id, os.urandom(8).hex(), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


@dataclass(frozen=True, slots=True)
class Metadata:
    """Everything about a message that is not its payload."""

    interface: str
    interface_version: Version
    source: Source = UNKNOWN_SOURCE
    message_id: str = field(default_factory=new_id)
    correlation_id: str = ""
    causation_id: str | None = None
    timestamp: datetime = field(default_factory=_now)
    trace: TraceContext = field(default_factory=TraceContext.new)

    def __post_init__(self) -> None:
        if not self.correlation_id:
            object.__setattr__(self, "correlation_id", self.message_id)

    def caused(self, interface: str, version: Version, source: Source) -> Metadata:
        """Metadata for a message sent because of this one: same conversation and trace."""
        return Metadata(
            interface=interface,
            interface_version=version,
            source=source,
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
            trace=self.trace.child(),
        )

    def with_source(self, source: Source) -> Self:
        return replace(self, source=source)

    def header(self) -> str:
        """The value of the ``Agentbus`` header."""
        return format_header(
            self.message_id,
            str(self.source),
            f"{self.interface}@{self.interface_version}",
            int(self.timestamp.timestamp() * 1000),
            self.correlation_id,
            self.causation_id,
        )

    def to_headers(self, *, dedupe: bool = False) -> dict[str, str]:
        """Headers for this message; ``dedupe`` adds ``Nats-Msg-Id`` for JetStream."""
        headers = {AGENTBUS: self.header(), TRACEPARENT: self.trace.header()}
        if dedupe:
            headers[MSG_ID] = self.message_id
        return headers

    @classmethod
    def from_headers(
        cls, headers: dict[str, str] | None, *, interface: str, version: Version
    ) -> Metadata:
        """Read metadata leniently: a plain NATS client may send none of our headers.

        Missing values fall back to ``interface`` / ``version`` (what the subject
        implies), a fresh id and the time of receipt.
        """
        headers = headers or {}
        fields = parse_header(headers.get(AGENTBUS, ""))
        name, _, version_text = fields.get("if", "").partition("@")
        try:
            declared_version = Version.parse(version_text) if version_text else version
        except ValueError:
            declared_version = version
        message_id = fields.get("id") or headers.get(MSG_ID) or new_id()
        return cls(
            interface=name or interface,
            interface_version=declared_version,
            source=Source.parse(fields["src"]) if "src" in fields else UNKNOWN_SOURCE,
            message_id=message_id,
            correlation_id=fields.get("corr", message_id),
            causation_id=fields.get("cause"),
            timestamp=_parse_time(fields.get("t")),
            trace=TraceContext.parse(headers.get(TRACEPARENT, "")) or TraceContext.new(),
        )


def format_header(
    message_id: str,
    source: str,
    interface: str,
    millis: int,
    correlation_id: str = "",
    causation_id: str | None = None,
) -> str:
    """The one place the ``Agentbus`` header is spelled."""
    text = f"id={message_id};src={source};if={interface};t={millis}"
    if correlation_id and correlation_id != message_id:
        text += f";corr={correlation_id}"
    if causation_id:
        text += f";cause={causation_id}"
    return text


def root_headers(source: str, interface: str) -> dict[str, str]:
    """Headers of a message that starts a conversation, without building :class:`Metadata`.

    ``source`` and ``interface`` are the already-formatted ``component/instance@version``
    and ``name@version``; the sender caches them. This is the request fast path.
    """
    return {
        AGENTBUS: format_header(new_id(), source, interface, time.time_ns() // 1_000_000),
        TRACEPARENT: f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01",
    }


def parse_header(value: str) -> dict[str, str]:
    """The ``key=value`` pairs of an ``Agentbus`` header; malformed pairs are skipped."""
    fields: dict[str, str] = {}
    for pair in value.split(";"):
        key, sep, item = pair.partition("=")
        if sep:
            fields[key.strip()] = item.strip()
    return fields


def declared_interface(headers: dict[str, str] | None) -> str:
    """Just the ``if`` field (``name@version``), or ``""``: the cheap check on the request path."""
    if not headers:
        return ""
    value = headers.get(AGENTBUS, "")
    start = value.find("if=")
    if start < 0:
        return ""
    end = value.find(";", start)
    return value[start + 3 : end if end >= 0 else len(value)]


def _parse_time(millis: str | None) -> datetime:
    try:
        return datetime.fromtimestamp(int(millis or "") / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return _now()
