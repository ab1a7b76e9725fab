"""Helpers of the maintainer tests: collect decision records live, wait for escalation states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import git
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from agentbus.framework import EVENTS, Bus
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.maintenance import Escalation, MaintainerDecision
from agentbus.interfaces.catalog.system import InterfaceChanged
from agentbus.maintainer.audit import decision_subject
from agentbus.maintainer.escalations import EscalationStore
from agentbus.maintainer.service import Maintainer

MakeSample = Callable[..., Path]
"""``make_sample(autonomy=None)``: a uniquely named sample component in its own repo."""
StartMaintainer = Callable[..., Coroutine[Any, Any, Maintainer]]
"""``await start_maintainer(component_dir, deployer=None, blue_green=False)``."""


class Decisions:
    """Decision records of one component (or all), as they are published."""

    def __init__(self) -> None:
        self.seen: list[MaintainerDecision] = []
        self._changed = asyncio.Event()
        self._subscription: Subscription | None = None

    @classmethod
    async def watch(cls, bus: Bus, component: str | None = None) -> Decisions:
        collector = cls()

        async def on_message(msg: Msg) -> None:
            collector.seen.append(MaintainerDecision.model_validate_json(msg.data))
            collector._changed.set()

        collector._subscription = await bus.subscribe_raw(decision_subject(component), on_message)
        return collector

    async def wait_for(
        self, outcome: str, *, component: str | None = None, timeout: float = 30.0
    ) -> MaintainerDecision:
        deadline = time.monotonic() + timeout
        while True:
            for record in self.seen:
                if record.outcome == outcome and component in (None, record.component):
                    return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {outcome!r} decision within {timeout}s; seen: "
                    + "; ".join(
                        f"{d.component} {d.action}/{d.outcome}: {d.reason}" for d in self.seen
                    )
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_count(self, n: int, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.seen)} decisions within {timeout}s, not {n}")
            await asyncio.sleep(0.05)

    def outcomes(self) -> list[str]:
        return [d.outcome for d in self.seen]


async def wait_until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, every: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy (the kit's ``eventually``, with the
    longer default the git and install work of these tests needs)."""
    return await eventually(check, timeout=timeout, interval=every, what="the condition")


async def escalation_in(bus: Bus, component: str, *statuses: str) -> Escalation | None:
    found = await EscalationStore(bus).list(component, statuses)
    return found[0] if found else None


async def consumer_exists(bus: Bus, durable: str) -> bool:
    """Whether the durable consumer ``durable`` of the events stream exists."""
    try:
        await bus.js.consumer_info(EVENTS.name, durable)
    except Exception:
        return False
    return True


def head(component: Path) -> str:
    """The commit checked out in the component's repository."""
    with git.Repo(component.parent) as repo:
        return repo.head.commit.hexsha


BREAKING = InterfaceChanged(
    interface="model.catalog",
    old_version="1.0.0",
    new_version="2.0.0",
    compatibility="breaking",
    reasons=["field_removed: /properties/source"],
)
"""A breaking change of an interface every component uses: escalated by every maintainer."""
