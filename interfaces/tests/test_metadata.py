"""Message metadata in NATS headers: round trip, lenient parsing, trace context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentbus.interfaces.metadata import (
    AGENTBUS,
    MSG_ID,
    TRACEPARENT,
    UNKNOWN_SOURCE,
    Metadata,
    Source,
    TraceContext,
    declared_interface,
    format_header,
    new_id,
    parse_header,
    root_headers,
)
from agentbus.interfaces.semver import Version

V1 = Version(1, 2, 0)
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_headers_round_trip_every_field() -> None:
    sent = Metadata(
        interface="model.language.generate",
        interface_version=V1,
        source=Source("planner", "p-1", "0.3.0"),
        message_id="m-1",
        correlation_id="conv-9",
        causation_id="m-0",
        timestamp=datetime(2025, 5, 17, 12, 30, 45, 123000, tzinfo=UTC),
        trace=TraceContext.parse(TRACE) or TraceContext.new(),
    )

    headers = sent.to_headers()
    received = Metadata.from_headers(headers, interface="ignored.name", version=Version(9, 0, 0))

    assert set(headers) == {AGENTBUS, TRACEPARENT}
    assert headers[TRACEPARENT] == TRACE
    assert received == sent


def test_dedupe_adds_the_jetstream_message_id() -> None:
    meta = Metadata("a.b", V1, message_id="m-7")

    assert meta.to_headers(dedupe=True)[MSG_ID] == "m-7"
    assert MSG_ID not in meta.to_headers()


def test_correlation_defaults_to_the_message_id_and_is_then_omitted() -> None:
    meta = Metadata("a.b", V1, message_id="m-1")

    assert meta.correlation_id == "m-1"
    assert "corr=" not in meta.header()
    assert "cause=" not in meta.header()


def test_caused_keeps_the_conversation_and_the_trace() -> None:
    root = Metadata("a.b", V1, Source("x"), correlation_id="conv")
    child = root.caused("c.d", Version(2, 0, 0), Source("y", "1"))

    assert child.correlation_id == "conv"
    assert child.causation_id == root.message_id
    assert child.message_id != root.message_id
    assert (child.interface, child.interface_version, child.source) == (
        "c.d",
        Version(2, 0, 0),
        Source("y", "1"),
    )
    assert child.trace.trace_id == root.trace.trace_id
    assert child.trace.span_id != root.trace.span_id
    grandchild = child.caused("e.f", V1, Source("z"))
    assert grandchild.correlation_id == "conv"
    assert grandchild.causation_id == child.message_id


def test_no_headers_at_all_fall_back_to_what_the_subject_says() -> None:
    before = datetime.now(UTC)
    meta = Metadata.from_headers(None, interface="a.b", version=V1)

    assert (meta.interface, meta.interface_version) == ("a.b", V1)
    assert meta.source == UNKNOWN_SOURCE
    assert len(meta.message_id) == 32
    assert meta.correlation_id == meta.message_id
    assert meta.causation_id is None
    assert meta.timestamp >= before
    assert TraceContext.parse(meta.trace.header()) == meta.trace


def test_plain_nats_publisher_with_a_msg_id() -> None:
    meta = Metadata.from_headers({MSG_ID: "dedupe-1"}, interface="a.b", version=V1)

    assert meta.message_id == "dedupe-1"
    assert meta.correlation_id == "dedupe-1"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        ";;;",
        "id=;src=;if=;t=",
        "if=a.b@not-a-version;t=yesterday",
        "t=99999999999999999999",
        "=x;novalue;id",
    ],
)
def test_malformed_agentbus_header_is_read_leniently(header: str) -> None:
    meta = Metadata.from_headers(
        {AGENTBUS: header, TRACEPARENT: "not a traceparent"}, interface="a.b", version=V1
    )

    assert meta.interface == "a.b"
    assert meta.interface_version == V1
    assert meta.message_id
    assert abs(meta.timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert TraceContext.parse(meta.trace.header()) is not None


def test_parse_header_skips_malformed_pairs_and_trims() -> None:
    assert parse_header(" id = 1 ;junk; src=a/b@1.0.0;if=x.y@1.0.0;=v") == {
        "id": "1",
        "src": "a/b@1.0.0",
        "if": "x.y@1.0.0",
        "": "v",
    }


def test_format_header_layout() -> None:
    assert format_header("i", "s", "a.b@1.0.0", 42) == "id=i;src=s;if=a.b@1.0.0;t=42"
    assert format_header("i", "s", "a.b@1.0.0", 42, "c", "p") == (
        "id=i;src=s;if=a.b@1.0.0;t=42;corr=c;cause=p"
    )
    assert format_header("i", "s", "x", 1, correlation_id="i") == "id=i;src=s;if=x;t=1"


def test_root_headers_parse_back() -> None:
    headers = root_headers("cli/me@1.0.0", "a.b@1.2.0")
    meta = Metadata.from_headers(headers, interface="other", version=Version(5, 0, 0))

    assert meta.source == Source("cli", "me", "1.0.0")
    assert (meta.interface, meta.interface_version) == ("a.b", V1)
    assert meta.correlation_id == meta.message_id
    assert TraceContext.parse(headers[TRACEPARENT]) is not None
    assert abs(meta.timestamp - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("headers", "declared"),
    [
        (None, ""),
        ({}, ""),
        ({AGENTBUS: "id=1;src=s"}, ""),
        ({AGENTBUS: "id=1;src=s;if=a.b@2.0.0;t=1"}, "a.b@2.0.0"),
        ({AGENTBUS: "if=a.b@1.0.0"}, "a.b@1.0.0"),
        ({"other": "if=x"}, ""),
    ],
)
def test_declared_interface(headers: dict[str, str] | None, declared: str) -> None:
    assert declared_interface(headers) == declared


def test_declared_interface_agrees_with_the_full_parse() -> None:
    header = Metadata("a.b", V1, Source("diff", "if", "1.0.0")).header()

    assert declared_interface({AGENTBUS: header}) == parse_header(header)["if"] == "a.b@1.2.0"


# -- trace context -------------------------------------------------------------------------------


def test_traceparent_parse_and_header() -> None:
    trace = TraceContext.parse(TRACE)

    assert trace == TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "01")
    assert trace.header() == TRACE
    assert TraceContext.parse(f"  {TRACE}  ") == trace


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # unknown version
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",  # short trace id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short span id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",  # short flags
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero span
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # missing part
    ],
)
def test_invalid_traceparent_is_refused(bad: str) -> None:
    assert TraceContext.parse(bad) is None


def test_child_span_keeps_trace_and_flags() -> None:
    parent = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00")
    child = parent.child()

    assert (child.trace_id, child.flags) == (parent.trace_id, "00")
    assert child.span_id != parent.span_id
    assert TraceContext.parse(child.header()) == child


def test_new_trace_is_valid_and_random() -> None:
    first, second = TraceContext.new(), TraceContext.new()

    assert TraceContext.parse(first.header()) == first
    assert first.trace_id != second.trace_id


# -- source -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("planner", Source("planner")),
        ("planner/p-1", Source("planner", "p-1")),
        ("planner@1.0.0", Source("planner", "", "1.0.0")),
        ("planner/p-1@1.0.0", Source("planner", "p-1", "1.0.0")),
    ],
)
def test_source_round_trip(text: str, source: Source) -> None:
    assert Source.parse(text) == source
    assert str(source) == text


def test_new_id_is_128_bit_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
