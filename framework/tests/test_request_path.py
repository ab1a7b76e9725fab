"""The request path against a real nats-server: every bad input gets a structured error reply,
is counted, and the service keeps answering afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from framework_helpers import (
    EchoInterface,
    EchoRequest,
    Note,
    echo_interface,
    echo_service,
    note_interface,
    request_json,
)
from nats.aio.msg import Msg

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.embedded import free_port
from agentbus.framework.errors import (
    NoRespondersError,
    NotConnectedError,
    RemoteError,
    RequestTimeoutError,
)
from agentbus.framework.service import Service
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.error_reply import (
    ERROR_HEADER,
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    ErrorReply,
)
from agentbus.interfaces.metadata import AGENTBUS, Source, format_header
from agentbus.interfaces.subjects import as_caller, subject_for


async def raw_request(
    bus: Bus, interface: EchoInterface, data: bytes, headers: dict[str, str] | None = None
) -> Msg:
    return await bus.nc.request(
        as_caller(subject_for(interface), "test"), data, timeout=5.0, headers=headers
    )


def interface_header(declared: str) -> dict[str, str]:
    """An ``Agentbus`` header declaring ``if=<declared>``, as a sender of that version writes."""
    return {AGENTBUS: format_header("abc123", "test/pytest@0.0.1", declared, 0)}


def error_of(msg: Msg, code: str, status: str) -> ErrorReply:
    """Check the three error headers and return the parsed ErrorReply body."""
    assert msg.headers is not None, "an error reply must carry headers"
    assert msg.headers[ERROR_HEADER] == code
    assert msg.headers[SERVICE_ERROR_CODE_HEADER] == status
    reply = ErrorReply.model_validate_json(msg.data)
    assert reply.code == code
    assert reply.message
    assert msg.headers[SERVICE_ERROR_HEADER] == reply.message
    return reply


async def still_answers_ping(bus: Bus, service: Service) -> None:
    ping = await request_json(bus, f"$SRV.PING.{service.name}.{service.instance}")
    assert ping["id"] == service.instance


async def test_good_request_gets_typed_reply(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    reply = await bus.request(interface, EchoRequest(text="hello"))

    assert reply.text == "hello"
    assert reply.instance == service.instance
    msg = await raw_request(bus, interface, b'{"text": "raw"}')
    assert not msg.headers or ERROR_HEADER not in msg.headers
    assert json.loads(msg.data)["text"] == "raw"


BAD_INPUTS: list[tuple[str, bytes, str, list[tuple[str, str]]]] = [
    ("not json", b"{this is not json", "bad_json", []),
    ("empty body", b"", "bad_json", []),
    ("missing field", b"{}", "schema_violation", [("text", "missing")]),
    ("extra field", b'{"text": "a", "surprise": 1}', "schema_violation",
     [("surprise", "extra_forbidden")]),
    ("wrong type", b'{"text": 5}', "schema_violation", [("text", "string_type")]),
    ("not an object", b"[1, 2]", "schema_violation", [("(root)", "model_type")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code", "problems"),
    [pytest.param(data, code, problems, id=label) for label, data, code, problems in BAD_INPUTS],
)
async def test_bad_input_gets_structured_error(
    start_service: StartService,
    bus: Bus,
    data: bytes,
    code: str,
    problems: list[tuple[str, str]],
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    msg = await raw_request(bus, interface, data)

    reply = error_of(msg, code, "400")
    if problems:
        errors: Any = reply.details["errors"]
        assert [(e["loc"], e["type"]) for e in errors] == problems
        assert all(e["msg"] for e in errors)
        assert "EchoRequest" in reply.message
    assert service.handled == 0, "an invalid request must never reach the handler"
    await still_answers_ping(bus, service)
    assert (await bus.request(interface, EchoRequest(text="after"))).text == "after"


async def test_unknown_major_version_is_unsupported(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    msg = await raw_request(
        bus, interface, b'{"text": "x"}', interface_header(f"{interface.name}@2.0.0")
    )

    reply = error_of(msg, "unsupported_version", "400")
    assert reply.details == {"requested": "2.0.0", "served": "1.0.0"}
    assert "major 1" in reply.message
    assert service.handled == 0
    await still_answers_ping(bus, service)


async def test_other_minor_of_same_major_is_served(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    await start_service(echo_service(interface))

    msg = await raw_request(
        bus, interface, b'{"text": "x"}', interface_header(f"{interface.name}@1.7.2")
    )

    assert not msg.headers or ERROR_HEADER not in msg.headers
    assert json.loads(msg.data)["text"] == "x"


async def test_oversize_payload_is_refused(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_payload": 64})
    big = json.dumps({"text": "x" * 100}).encode()

    msg = await raw_request(bus, interface, big)

    reply = error_of(msg, "payload_too_large", "413")
    assert reply.details == {"size": len(big), "limit": 64}
    assert "AGENTBUS_MAX_PAYLOAD" in reply.message
    assert service.handled == 0
    await still_answers_ping(bus, service)
    assert (await bus.request(interface, EchoRequest(text="small"))).text == "small"


@pytest.mark.parametrize(
    ("fail", "code", "status", "details"),
    [
        pytest.param("crash", "internal", "500", {"exception": "RuntimeError"}, id="exception"),
        pytest.param("refuse", "not_found", "404", {"key": "k"}, id="service-error"),
        pytest.param("wrong", "internal", "500", {}, id="wrong-reply-type"),
    ],
)
async def test_handler_failures_become_error_replies(
    start_service: StartService,
    bus: Bus,
    fail: str,
    code: str,
    status: str,
    details: dict[str, Any],
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    msg = await raw_request(
        bus, interface, EchoRequest(text="k", fail=fail).model_dump_json().encode()
    )

    reply = error_of(msg, code, status)
    assert reply.details == details
    assert service.handled == 1
    await still_answers_ping(bus, service)
    assert (await bus.request(interface, EchoRequest(text="ok"))).text == "ok"


async def test_wrong_reply_type_names_both_types(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    await start_service(echo_service(interface))

    with pytest.raises(RemoteError) as caught:
        await bus.request(interface, EchoRequest(text="k", fail="wrong"))

    assert caught.value.code == "internal"
    assert "Other" in str(caught.value)
    assert "EchoReply" in str(caught.value)


async def test_bus_request_raises_remote_error_with_details(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    await start_service(echo_service(interface))

    with pytest.raises(RemoteError) as caught:
        await bus.request(interface, EchoRequest(text="missing-key", fail="refuse"))

    assert caught.value.code == "not_found"
    assert caught.value.details == {"key": "missing-key"}
    assert "no such thing: missing-key" in str(caught.value)


async def test_errors_are_counted_in_stats_and_prometheus(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"max_payload": 200})
    subject = subject_for(interface)
    bad: list[tuple[bytes, dict[str, str] | None]] = [
        (b"nope", None),
        (b"{}", None),
        (b'{"text": "x", "extra": true}', None),
        (b'{"text": "x"}', interface_header(f"{interface.name}@3.1.0")),
        (json.dumps({"text": "x" * 300}).encode(), None),
        (b'{"text": "x", "fail": "crash"}', None),
        (b'{"text": "x", "fail": "refuse"}', None),
    ]
    for data, headers in bad:
        await raw_request(bus, interface, data, headers)
    for _ in range(3):
        await bus.request(interface, EchoRequest(text="fine"))

    stats = await request_json(bus, f"$SRV.STATS.{service.name}.{service.instance}")
    (endpoint,) = stats["endpoints"]
    assert endpoint["num_requests"] == 10
    assert endpoint["num_errors"] == 7
    assert endpoint["last_error"].startswith("not_found: ")

    def errors(code: str) -> float | None:
        value: float | None = service.metrics.registry.get_sample_value(
            "agentbus_request_errors_total",
            {"service": service.name, "subject": subject, "code": code},
        )
        return value

    assert errors("bad_json") == 1
    assert errors("schema_violation") == 2
    assert errors("unsupported_version") == 1
    assert errors("payload_too_large") == 1
    assert errors("internal") == 1
    assert errors("not_found") == 1
    assert (
        service.metrics.registry.get_sample_value(
            "agentbus_requests_total", {"service": service.name, "subject": subject}
        )
        == 10
    )


async def test_request_without_reply_subject_is_handled_silently(
    start_service: StartService, bus: Bus
) -> None:
    """A plain publish to a request subject is handled, and nothing breaks for lack of a reply."""
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    await bus.nc.publish(as_caller(subject_for(interface), "test"), b'{"text": "fire and forget"}')
    await bus.nc.flush()

    assert (await bus.request(interface, EchoRequest(text="next"))).text == "next"
    assert service.handled == 2


async def test_nobody_serving_raises_no_responders(bus: Bus) -> None:
    interface = echo_interface()

    with pytest.raises(NoRespondersError) as caught:
        await bus.request(interface, EchoRequest(text="anyone?"))

    message = str(caught.value)
    assert interface.key in message
    assert subject_for(interface) in message
    assert "is it running?" in message


async def test_slow_reply_raises_request_timeout(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    await start_service(echo_service(interface))

    with pytest.raises(RequestTimeoutError) as caught:
        await bus.request(interface, EchoRequest(text="slow", delay=0.4), timeout=0.1)

    assert interface.key in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


async def test_closed_port_raises_not_connected(settings: Settings) -> None:
    port = free_port()
    closed = settings.model_copy(update={"nats_url": f"nats://127.0.0.1:{port}"})
    bus = Bus(closed, Source("test", "pytest"))

    with pytest.raises(NotConnectedError) as caught:
        await bus.connect()

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "agentbus up" in message


async def test_no_url_configured_raises_not_connected(settings: Settings) -> None:
    """No AGENTBUS_NATS_URL and no ``agentbus up`` URL file: say how to get a server."""
    unset = settings.model_copy(update={"nats_url": None})
    bus = Bus(unset, Source("test", "pytest"))

    with pytest.raises(NotConnectedError, match="agentbus up"):
        await bus.connect()


async def test_closed_bus_raises_not_connected(settings: Settings) -> None:
    interface = echo_interface()
    bus = Bus(settings, Source("test", "pytest"))
    await bus.connect()
    await bus.close()

    with pytest.raises(NotConnectedError):
        await bus.request(interface, EchoRequest(text="x"))
    with pytest.raises(NotConnectedError):
        await bus.publish(note_interface(), Note(text="x"))
