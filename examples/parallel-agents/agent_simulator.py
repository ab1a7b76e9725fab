"""One simulated agent, for a terminal of its own (the seed's ``agent-simulator``).

    agentbus up -f examples/hello/agentbus.toml      # or any running NATS (AGENTBUS_NATS_URL)
    python examples/parallel-agents/agent_simulator.py user-service true --think 2
    python examples/parallel-agents/agent_simulator.py notification-service true --think 0.5
    python examples/broadcast-event/broadcast.py interface-change user.management

Runs the maintainer of ``components/<name>`` (in this folder) until Ctrl-C; its
decisions are on ``agentbus.audit.<name>.decision`` (``agentbus decisions``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from simulated import COMPONENTS, SimulatedMaintainer

from agentbus.framework import Settings, serve


def main() -> None:
    names = sorted(p.name for p in COMPONENTS.iterdir())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("component", choices=names)
    parser.add_argument("autonomous", nargs="?", default="false", choices=["true", "false"])
    parser.add_argument("--think", type=float, default=1.0, help="seconds per evaluation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    agent = SimulatedMaintainer(
        Settings.load(),
        component=args.component,
        think=args.think,
        autonomous=args.autonomous == "true",
    )
    asyncio.run(serve(agent))


if __name__ == "__main__":
    main()
