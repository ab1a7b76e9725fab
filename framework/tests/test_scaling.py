"""Replicas: instances of one service share its queue group and split the requests."""

from __future__ import annotations

import asyncio
from collections import Counter

from framework_helpers import EchoRequest, echo_interface, echo_service, request_json

from agentbus.framework.bus import Bus
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService


async def test_two_replicas_split_a_thousand_requests(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    cls = echo_service(interface)
    first = await start_service(cls, instance="replica-a")
    second = await start_service(cls, instance="replica-b")
    assert first.queue_group == second.queue_group == cls.name

    replies = await asyncio.gather(
        *(bus.request(interface, EchoRequest(text=str(i))) for i in range(1000))
    )

    assert sorted(int(r.text) for r in replies) == list(range(1000))
    by_instance = Counter(r.instance for r in replies)
    assert set(by_instance) == {"replica-a", "replica-b"}
    assert by_instance["replica-a"] > 200, by_instance
    assert by_instance["replica-b"] > 200, by_instance
    assert first.handled + second.handled == 1000, "each request is handled exactly once"
    assert (first.handled, second.handled) == (by_instance["replica-a"], by_instance["replica-b"])


async def test_each_replica_reports_its_own_share(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    cls = echo_service(interface)
    replicas = [await start_service(cls, instance=f"r{i}") for i in range(2)]

    await asyncio.gather(*(bus.request(interface, EchoRequest(text="x")) for _ in range(100)))

    counts = []
    for replica in replicas:
        stats = await request_json(bus, f"$SRV.STATS.{cls.name}.{replica.instance}")
        counts.append(stats["endpoints"][0]["num_requests"])
    assert sum(counts) == 100
    assert counts == [r.handled for r in replicas]


async def test_different_services_on_one_interface_each_answer(
    start_service: StartService, bus: Bus
) -> None:
    """Queue groups are per service: two services on one subject both get every request."""
    interface = echo_interface()
    one = await start_service(echo_service(interface))
    two = await start_service(echo_service(interface))

    for _ in range(10):
        await bus.request(interface, EchoRequest(text="x"))

    await eventually(lambda: one.handled == two.handled == 10, what="both services handled 10")
