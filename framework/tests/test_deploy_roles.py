"""Blue/green roles in one process: direct subjects, joining and leaving as the KV record says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from framework_helpers import (
    EchoReply,
    EchoRequest,
    Note,
    echo_interface,
    echo_service,
    note_interface,
    request_json,
    unique,
)

from agentbus.framework import Bus, Service, subscribes, to_json
from agentbus.framework.context import MessageContext
from agentbus.framework.deploy.state import DeploymentRecord, DeploymentStore
from agentbus.framework.errors import DeploymentConflict, NoRespondersError
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces.subjects import as_caller, direct_subject


def record(color: str, *serving: str, version: str = "1") -> DeploymentRecord:
    return DeploymentRecord.model_validate(
        {"version": version, "commit": "c" * 40, "color": color, "serving": serving or None}
    )


async def serving_flag(bus: Bus, name: str, instance: str) -> str:
    ping = await request_json(bus, f"$SRV.PING.{name}.{instance}")
    return str(ping["metadata"]["deploy_serving"])


async def test_without_a_record_an_instance_answers_only_on_its_direct_subject(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    cls = echo_service(interface)
    component = unique("comp")
    await start_service(
        cls, instance="g1", settings={"deploy_color": "green", "deploy_component": component}
    )

    with pytest.raises(NoRespondersError):
        await bus.request(interface, EchoRequest(text="production"), timeout=1)
    reply = await bus.request_raw(
        as_caller(direct_subject("g1", interface.name, 1), "test"),
        to_json(EchoRequest(text="direct")),
    )
    assert EchoReply.model_validate_json(reply.data).text == "direct"
    assert await serving_flag(bus, cls.name, "g1") == "false"


async def test_a_record_naming_its_color_makes_it_join_and_a_flip_makes_it_drain(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    cls = echo_service(interface)
    component = unique("comp")
    store = await DeploymentStore.open(bus.js)
    first = await store.put(component, record("blue"), revision=None)
    blue = await start_service(
        cls, instance="b1", settings={"deploy_color": "blue", "deploy_component": component}
    )

    assert await serving_flag(bus, cls.name, "b1") == "true", "joined at start from the record"
    in_flight = [
        asyncio.create_task(bus.request(interface, EchoRequest(text=str(i), delay=0.5)))
        for i in range(20)
    ]
    await eventually(lambda: blue.handled == 20, what="20 requests in flight on blue")

    await store.put(component, record("green"), revision=first.revision)

    async def left() -> bool:
        return await serving_flag(bus, cls.name, "b1") == "false"

    await eventually(left, what="blue left production intake")
    replies = await asyncio.gather(*in_flight)
    assert sorted(int(r.text) for r in replies) == list(range(20)), "drained, not dropped"
    with pytest.raises(NoRespondersError):
        await bus.request(interface, EchoRequest(text="after"), timeout=1)


async def test_the_overlap_of_a_flip_keeps_a_subscriber_under_load(
    start_service: StartService, bus: Bus
) -> None:
    interface = echo_interface()
    cls = echo_service(interface)
    component = unique("comp")
    store = await DeploymentStore.open(bus.js)
    now = await store.put(component, record("blue"), revision=None)
    await start_service(
        cls, instance="b1", settings={"deploy_color": "blue", "deploy_component": component}
    )
    await start_service(
        cls, instance="g1", settings={"deploy_color": "green", "deploy_component": component}
    )
    seen: list[str] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            try:  # 30 s: a lost request (no reply at all) fails, a slow one on busy cores not
                reply = await bus.request(interface, EchoRequest(text="x"), timeout=30)
                seen.append(reply.instance)
            except Exception as exc:
                failures.append(exc)

    workers = [asyncio.create_task(load()) for _ in range(4)]
    await eventually(lambda: len(seen) > 50, what="load flowing to blue")
    now = await store.put(component, record("green", "blue", "green"), revision=now.revision)

    async def green_joined() -> bool:
        return await serving_flag(bus, cls.name, "g1") == "true"

    await eventually(green_joined, what="green joined")
    await store.put(component, record("green", "green"), revision=now.revision)

    async def blue_left() -> bool:
        return await serving_flag(bus, cls.name, "b1") == "false"

    await eventually(blue_left, what="blue left")
    mark = len(seen)
    await eventually(lambda: len(seen) > mark + 50, what="load flowing after the flip")
    stop.set()
    await asyncio.gather(*workers)

    assert not failures, f"{len(failures)} request(s) failed, first: {failures[0]!r}"
    assert seen[0] == "b1"
    assert set(seen[mark + 5 :]) == {"g1"}, "only green serves once blue left"


async def test_a_stale_compare_and_set_is_refused(bus: Bus) -> None:
    store = await DeploymentStore.open(bus.js)
    component = unique("comp")
    created = await store.put(component, record("blue"), revision=None)
    await store.put(component, record("green"), revision=created.revision)

    with pytest.raises(DeploymentConflict, match="another promote or rollback"):
        await store.put(component, record("blue"), revision=created.revision)
    with pytest.raises(DeploymentConflict):
        await store.put(component, record("blue"), revision=None)
    current = await store.get(component)
    assert current is not None
    assert current.record.color == "green"


async def test_a_record_from_a_simpler_writer_is_read(bus: Bus) -> None:
    """The maintainer's promoter writes only version, commit, color, previous, updated_at."""
    store = await DeploymentStore.open(bus.js)
    component = unique("comp")
    await store.kv.put(
        component,
        b'{"version": "2", "commit": "abc", "color": "green", "updated_at": "2026-01-01T00:00:00Z",'
        b' "previous": {"version": "1", "commit": "def", "color": "blue", "previous": null,'
        b' "updated_at": "2025-12-31T00:00:00Z"}}',
    )
    current = await store.get(component)
    assert current is not None
    assert current.record.serving_colors() == {"green"}
    assert current.record.previous is not None
    assert current.record.previous.version == "1"


async def test_event_subscriptions_follow_the_role_and_keep_their_durable(
    start_service: StartService, bus: Bus
) -> None:
    interface = note_interface()
    component = unique("comp")

    class Listener(Service):
        name = unique("listener")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.heard: list[str] = []

        @subscribes(interface)
        async def on_note(self, event: Note, ctx: MessageContext) -> None:
            self.heard.append(event.text)

    store = await DeploymentStore.open(bus.js)
    now = await store.put(component, record("blue"), revision=None)
    listener = await start_service(
        Listener, instance="b1", settings={"deploy_color": "blue", "deploy_component": component}
    )
    await bus.publish(interface, Note(text="while serving"))
    await eventually(lambda: listener.heard == ["while serving"], what="the first event")

    now = await store.put(component, record("green"), revision=now.revision)

    async def left() -> bool:
        return await serving_flag(bus, Listener.name, "b1") == "false"

    await eventually(left, what="blue left")
    await bus.publish(interface, Note(text="while standing by"))
    await asyncio.sleep(0.5)
    assert listener.heard == ["while serving"], "a standby instance consumes no events"

    await store.put(component, record("blue"), revision=now.revision)
    await eventually(
        lambda: listener.heard == ["while serving", "while standing by"],
        what="the event kept by the durable consumer, delivered after rejoining",
    )


async def test_a_deleted_record_can_be_created_again(bus: Bus) -> None:
    store = await DeploymentStore.open(bus.js)
    component = unique("comp")
    created = await store.put(component, record("blue"), revision=None)

    await store.delete(component, revision=created.revision)

    assert await store.get(component) is None
    again = await store.put(component, record("green"), revision=None)
    assert again.revision > created.revision
    with pytest.raises(DeploymentConflict):
        await store.delete(component, revision=created.revision)


async def test_subscriptions_made_at_run_time_wait_for_the_color_to_serve(
    start_service: StartService, bus: Bus
) -> None:
    """``Service.subscribe`` from ``initialize`` or later: a green instance consumes nothing
    before it is promoted (hand-built subscriptions used to consume at once)."""
    early, late = note_interface(), note_interface()
    component = unique("comp")

    class Router(Service):
        name = unique("router")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.heard: list[str] = []

        async def initialize(self) -> None:
            await self.subscribe(early, self.hear, durable=f"{self.queue_group}__early")

        async def hear(self, event: Note, ctx: MessageContext) -> None:
            self.heard.append(event.text)

    store = await DeploymentStore.open(bus.js)
    now = await store.put(component, record("blue"), revision=None)
    green = await start_service(
        Router, instance="g1", settings={"deploy_color": "green", "deploy_component": component}
    )
    second = await green.subscribe(late, green.hear, durable=f"{green.queue_group}__late")
    again = await green.subscribe(late, green.hear, durable=f"{green.queue_group}__late2")
    assert not second.consuming
    assert not again.consuming

    await bus.publish(early, Note(text="early, before promotion"))
    await bus.publish(late, Note(text="late, before promotion"))
    await asyncio.sleep(0.5)
    assert green.heard == [], "a green instance consumed events before it was promoted"

    await store.put(component, record("green"), revision=now.revision)
    await eventually(lambda: second.consuming, what="the run-time subscription to start")
    await second.start()  # a started subscription: starting it again changes nothing
    await bus.publish(early, Note(text="early"))
    await bus.publish(late, Note(text="late"))
    await eventually(
        lambda: sorted(green.heard) == ["early", "late", "late"],
        what="both run-time subscriptions consuming once green serves",
    )


async def test_a_pointer_only_promotion_flips_the_color_and_keeps_the_previous(bus: Bus) -> None:
    store = await DeploymentStore.open(bus.js)
    component = unique("comp")

    first = await store.point(component, version="1.0.0", commit="a" * 40)
    second = await store.point(component, version="1.0.1", commit="b" * 40)

    assert (first.record.color, first.record.previous) == ("blue", None)
    assert second.record.color == "green"
    assert second.record.previous is not None
    assert (second.record.previous.version, second.record.previous.color) == ("1.0.0", "blue")
    current = await store.get(component)
    assert current is not None
    assert current.revision == second.revision
    assert current.record.serving_colors() == {"green"}
