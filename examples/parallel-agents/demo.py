"""Parallel agents (the seed's example): one broadcast, every agent evaluates at once.

    python examples/parallel-agents/demo.py

Starts an embedded nats-server and four simulated agents in one process, each the real
maintainer service with an evaluation that takes its own time (2 s, 0.5 s, 1 s, 1 s: the
seed's minutes divided by 60). Broadcasts ``interface.changed`` for ``user.management``;
the three services that provide or consume it escalate ("interface changes need review"),
the unrelated one ignores it. The total is the slowest agent's time, not the sum.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from nats.aio.msg import Msg
from simulated import SimulatedMaintainer

from agentbus.framework import Bus, EmbeddedNats, Settings
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.maintenance import MaintainerDecision
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.maintainer.audit import decision_subject

AGENTS = {"user-service": 2.0, "notification-service": 0.5, "billing-service": 1.0}
UNRELATED = {"search-service": 1.0}


async def run(settings: Settings) -> tuple[float, float]:
    thinking = {**AGENTS, **UNRELATED}
    agents = [SimulatedMaintainer(settings, component=n, think=t) for n, t in thinking.items()]
    await asyncio.gather(*(a.start() for a in agents))
    try:
        async with Bus(settings, Source("architect-ai", "demo")) as bus:
            decided: dict[str, float] = {}
            everyone = asyncio.Event()
            started = 0.0

            async def on_decision(msg: Msg) -> None:
                record = MaintainerDecision.model_validate_json(msg.data)
                elapsed = time.perf_counter() - started
                decided[record.component] = elapsed
                print(
                    f"  {elapsed:5.2f} s  {record.component:<21} {record.action:<8} "
                    f"({record.rule}) {record.reason}",
                    flush=True,
                )
                if len(decided) == len(thinking):
                    everyone.set()

            await bus.subscribe_raw(decision_subject(None), on_decision)
            print("architect AI broadcasts: InterfaceChanged(user.management 1.0.0 -> 1.1.0)")
            started = time.perf_counter()
            await bus.publish(
                INTERFACE_CHANGED,
                InterfaceChanged(
                    interface="user.management",
                    old_version="1.0.0",
                    new_version="1.1.0",
                    compatibility="compatible",
                    component="user-service",
                ),
            )
            await asyncio.wait_for(everyone.wait(), 60)
            return max(decided.values()), sum(thinking.values())
    finally:
        await asyncio.gather(*(a.stop() for a in agents))


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="agentbus-parallel-") as scratch,
        EmbeddedNats(Path(scratch) / "nats") as server,
    ):
        settings = Settings(nats_url=server.url, data_dir=Path(scratch), shutdown_grace=2.0)
        total, sequential = asyncio.run(run(settings))
    print(f"all agents processed it simultaneously: total {total:.2f} s")
    print(f"sequentially it would take {sequential:.2f} s ({sequential / total:.1f}x longer)")


if __name__ == "__main__":
    main()
