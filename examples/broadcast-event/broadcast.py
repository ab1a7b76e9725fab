"""Broadcast an event to every maintainer and show their decisions (the seed's
``broadcast-event``).

    python examples/broadcast-event/broadcast.py interface-change user.management \\
        [--from 1.0.0] [--to 1.1.0] [--compatibility compatible|breaking|none] [--wait 5]
    python examples/broadcast-event/broadcast.py dependency-update greetlib 1.0.0 1.0.1

Connects to the NATS of a running ``agentbus up`` (or ``AGENTBUS_NATS_URL``), publishes
``interface.changed`` or ``dependency.updated`` durably, then prints the decisions the
maintainers record within ``--wait`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from nats.aio.msg import Msg

from agentbus.framework import Bus, Settings
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.maintenance import (
    DEPENDENCY_UPDATED,
    DependencyUpdated,
    MaintainerDecision,
)
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.maintainer.audit import decision_subject


async def broadcast(args: argparse.Namespace) -> int:
    async with Bus(Settings.load(), Source("broadcast-event", "cli")) as bus:
        seen = 0
        started = time.perf_counter()

        async def on_decision(msg: Msg) -> None:
            nonlocal seen
            record = MaintainerDecision.model_validate_json(msg.data)
            if record.event_id != metadata.message_id:
                return
            seen += 1
            print(
                f"  {time.perf_counter() - started:5.2f} s  {record.component:<21} "
                f"{record.action}/{record.outcome} ({record.rule}) {record.reason}",
                flush=True,
            )

        await bus.subscribe_raw(decision_subject(None), on_decision)
        if args.kind == "interface-change":
            interface = INTERFACE_CHANGED
            message: InterfaceChanged | DependencyUpdated = InterfaceChanged(
                interface=args.name,
                old_version=args.old,
                new_version=args.new,
                compatibility=args.compatibility,
            )
        else:
            interface = DEPENDENCY_UPDATED
            message = DependencyUpdated(
                package=args.name, from_version=args.old, to_version=args.new
            )
        metadata = bus.metadata(interface)
        await bus.publish(interface, message, metadata=metadata)
        print(f"broadcast {interface.name}: {message.model_dump_json()}", flush=True)
        await asyncio.sleep(args.wait)
        print(f"{seen} decision(s) within {args.wait:g} s")
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    change = kinds.add_parser("interface-change", help="interface.changed")
    change.add_argument("name", help="the interface, e.g. user.management")
    change.add_argument("--from", dest="old", default="1.0.0")
    change.add_argument("--to", dest="new", default="1.1.0")
    change.add_argument(
        "--compatibility", default="compatible", choices=["none", "compatible", "breaking"]
    )
    update = kinds.add_parser("dependency-update", help="dependency.updated")
    update.add_argument("name", help="the package, e.g. httpx")
    update.add_argument("old", help="the version in use")
    update.add_argument("new", help="the new version")
    for sub in (change, update):
        sub.add_argument("--wait", type=float, default=5.0, help="seconds to show decisions")
    asyncio.run(broadcast(parser.parse_args()))


if __name__ == "__main__":
    main()
