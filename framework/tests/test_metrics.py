"""Prometheus metrics over HTTP, one registry per service."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from framework_helpers import EchoRequest, echo_interface, echo_service

from agentbus.framework.bus import Bus
from agentbus.framework.metrics import ServiceMetrics
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.subjects import as_caller, subject_for


def fetch(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(port: int) -> str:
    return await asyncio.to_thread(fetch, port)


async def test_metrics_are_served_over_http(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface), settings={"metrics_port": 0})
    assert service.metrics_port is not None
    assert service.metrics_port > 0
    for _ in range(3):
        await bus.request(interface, EchoRequest(text="x"))
    await bus.nc.request(as_caller(subject_for(interface), "test"), b"junk", timeout=2)

    labels = f'service="{service.name}",subject="{subject_for(interface)}"'
    durations = f"agentbus_request_duration_seconds_count{{{labels}}} 4.0"

    port = service.metrics_port

    async def scraped() -> bool:  # latency is observed just after the reply is sent
        return durations in await scrape(port)

    await eventually(scraped, what="4 durations observed")
    text = await scrape(port)

    assert f"agentbus_requests_total{{{labels}}} 4.0" in text
    assert f'agentbus_request_errors_total{{code="bad_json",{labels}}} 1.0' in text
    assert f'agentbus_requests_in_flight{{service="{service.name}"}}' in text


async def test_in_flight_gauge_follows_the_work(start_service: StartService, bus: Bus) -> None:
    interface = echo_interface()
    service = await start_service(echo_service(interface))
    gauge = {"service": service.name}
    requests = [
        asyncio.create_task(bus.request(interface, EchoRequest(text="x", delay=0.3)))
        for _ in range(4)
    ]

    def in_flight() -> float | None:
        value: float | None = service.metrics.registry.get_sample_value(
            "agentbus_requests_in_flight", gauge
        )
        return value

    await eventually(lambda: in_flight() == 4, what="4 requests in flight")
    await asyncio.gather(*requests)
    await eventually(lambda: in_flight() == 0, what="none in flight")


async def test_two_services_in_one_process_have_separate_metrics(
    start_service: StartService, bus: Bus
) -> None:
    one_if, two_if = echo_interface(), echo_interface()
    one = await start_service(echo_service(one_if), settings={"metrics_port": 0})
    two = await start_service(echo_service(two_if), settings={"metrics_port": 0})
    await bus.request(one_if, EchoRequest(text="x"))
    assert one.metrics_port is not None
    assert two.metrics_port is not None

    one_text, two_text = await scrape(one.metrics_port), await scrape(two.metrics_port)

    assert one.name in one_text
    assert two.name not in one_text
    assert two.name in two_text
    assert one.name not in two_text


async def test_stopping_closes_the_metrics_port(start_service: StartService) -> None:
    service = await start_service(echo_service(echo_interface()), settings={"metrics_port": 0})
    port = service.metrics_port
    assert port is not None
    await scrape(port)

    await service.stop()

    with pytest.raises(urllib.error.URLError):
        await scrape(port)


async def test_no_metrics_port_unless_asked(start_service: StartService) -> None:
    service = await start_service(echo_service(echo_interface()))

    assert service.metrics_port is None


def test_registries_are_independent() -> None:
    first, second = ServiceMetrics("a"), ServiceMetrics("a")
    first.endpoint("s").requests.inc()

    assert (
        first.registry.get_sample_value("agentbus_requests_total", {"service": "a", "subject": "s"})
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "agentbus_requests_total", {"service": "a", "subject": "s"}
        )
        is None
    )


async def test_closing_the_metrics_server_does_not_stall_the_event_loop(
    start_service: StartService, bus: Bus
) -> None:
    """Services share a loop (tests, ``--in-process``): one stopping must not freeze the rest."""
    leaving = await start_service(echo_service(echo_interface()), settings={"metrics_port": 0})
    longest = 0.0
    stopped = asyncio.Event()

    async def measure_loop_lag() -> None:
        nonlocal longest
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            longest = max(longest, loop.time() - before)

    probe = asyncio.create_task(measure_loop_lag())
    await asyncio.sleep(0.05)
    await leaving.stop()
    stopped.set()
    await probe

    assert longest < 0.25, f"the event loop was blocked for {longest:.2f}s"
