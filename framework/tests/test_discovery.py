"""Discovery through the NATS service protocol: ``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from framework_helpers import (
    EchoRequest,
    echo_interface,
    echo_service,
    gather_replies,
    request_json,
)
from nats.aio.msg import Msg
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

from agentbus.framework.bus import Bus
from agentbus.framework.errors import NoRespondersError
from agentbus.framework.service import Service
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.subjects import as_caller, callers, subject_for

PING = "io.nats.micro.v1.ping_response"
INFO = "io.nats.micro.v1.info_response"
STATS = "io.nats.micro.v1.stats_response"


async def two_replicas(start_service: StartService) -> tuple[Service, Service]:
    cls = echo_service(echo_interface())
    return (
        await start_service(cls, instance="one"),
        await start_service(cls, instance="two"),
    )


@pytest.mark.parametrize(("verb", "kind"), [("PING", PING), ("INFO", INFO), ("STATS", STATS)])
async def test_every_verb_answers_for_all_by_name_and_by_id(
    start_service: StartService, bus: Bus, verb: str, kind: str
) -> None:
    one, two = await two_replicas(start_service)
    other = await start_service(echo_service(echo_interface()))

    everyone = await gather_replies(bus, f"$SRV.{verb}", expected=3)
    by_name = await gather_replies(bus, f"$SRV.{verb}.{one.name}", expected=3, timeout=0.25)
    by_id = await gather_replies(bus, f"$SRV.{verb}.{one.name}.two", expected=2, timeout=0.25)

    def who(replies: list[Msg]) -> set[tuple[str, str]]:
        documents = [json.loads(r.data) for r in replies]
        assert {d["type"] for d in documents} == {kind}
        return {(d["name"], d["id"]) for d in documents}

    assert {(one.name, "one"), (two.name, "two"), (other.name, other.instance)} <= who(everyone)
    assert who(by_name) == {(one.name, "one"), (two.name, "two")}
    assert who(by_id) == {(two.name, "two")}


async def test_ping_identifies_the_instance(start_service: StartService, bus: Bus) -> None:
    service = await start_service(echo_service(echo_interface()))

    document = await request_json(bus, f"$SRV.PING.{service.name}")

    assert document == {
        "type": PING,
        "name": service.name,
        "id": service.instance,
        "version": "1.2.3",
        "metadata": {"queue_group": service.name},
    }
    assert ServicePing.from_dict(document).id == service.instance


async def test_info_lists_endpoints_with_subject_and_queue_group(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))

    document = await request_json(bus, f"$SRV.INFO.{service.name}.{service.instance}")

    assert document["type"] == INFO
    assert document["version"] == "1.2.3"
    assert document["description"] == "Echoes text back."
    assert document["endpoints"] == [
        {
            "name": interface.name.replace(".", "-"),
            "subject": callers(subject_for(interface)),
            "queue_group": service.name,
            "metadata": {"interface": interface.name, "interface_version": "1.0.0"},
        }
    ]
    info = ServiceInfo.from_dict(document)
    assert info.endpoints[0].subject == f"agentbus.{interface.name}.v1.*"  # any caller


async def test_stats_count_requests_and_errors(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))
    for _ in range(3):
        await bus.request(interface, EchoRequest(text="ok"))
    await bus.nc.request(as_caller(subject_for(interface), "test"), b"not json", timeout=2)
    await bus.nc.request(
        as_caller(subject_for(interface), "test"), b'{"text": "x", "fail": "crash"}', timeout=2
    )

    document = await request_json(bus, f"$SRV.STATS.{service.name}.{service.instance}")

    assert document["type"] == STATS
    (endpoint,) = document["endpoints"]
    assert endpoint["subject"] == callers(subject_for(interface))
    assert endpoint["queue_group"] == service.name
    assert endpoint["num_requests"] == 5
    assert endpoint["num_errors"] == 2
    assert endpoint["last_error"].startswith("internal: ")
    assert endpoint["processing_time"] > 0
    assert endpoint["average_processing_time"] == endpoint["processing_time"] // 5
    started = datetime.fromisoformat(document["started"])
    assert abs(datetime.now(UTC) - started) < timedelta(minutes=1)
    stats = ServiceStats.from_dict(document)
    assert stats.endpoints[0].num_errors == 2


async def test_stopped_service_leaves_discovery(start_service: StartService, bus: Bus) -> None:
    service = await start_service(echo_service(echo_interface()))
    await request_json(bus, f"$SRV.PING.{service.name}")

    await service.stop()

    with pytest.raises(NoRespondersError):
        await bus.request_raw(f"$SRV.PING.{service.name}", b"", timeout=1)


async def test_metadata_advertises_the_metrics_port(start_service: StartService, bus: Bus) -> None:
    service = await start_service(echo_service(echo_interface()), settings={"metrics_port": 0})

    document = await request_json(bus, f"$SRV.INFO.{service.name}")

    assert service.metrics_port
    assert document["metadata"]["metrics_port"] == str(service.metrics_port)
