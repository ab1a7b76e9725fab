"""Broadcast fan-out: one event, N maintainers, each spending 1 s on a model evaluation.

    python bench/broadcast_fanout.py [--counts 1,10,50] [--latency 1.0] [--rounds 3] [--json]

Each maintainer (``agentbus.maintainer.service.Maintainer``, the real service: durable
consumer, rule evaluation, ``ask-model`` over the bus, audit record) watches its own
component, whose rules fall through to ``ask-model``. The model is
``agentbus.model_gateway.testing.FakeModelGateway``: a service on the bus that answers
``model.language.generate`` after ``--latency`` seconds (the evaluation's cost is waiting
for the model, as with a real one), in its own process like the real gateway. One
``interface.changed`` is broadcast; the figure is the time from the publish until every
maintainer's decision is on the audit stream, as a ratio to N = 1. All maintainers run
in one process on an embedded nats-server (2 cores: the wait is I/O, so one event loop
carries them). Target (issue 6): <= 1.2 x at N = 50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nats.aio.msg import Msg

from agentbus.framework import Bus, BusError, EmbeddedNats, Settings
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.maintenance import MaintainerDecision
from agentbus.interfaces.catalog.model import CATALOG, CatalogRequest
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED, InterfaceChanged
from agentbus.maintainer.audit import decision_subject
from agentbus.maintainer.service import Maintainer
from agentbus.maintainer.testing import SAMPLE
from agentbus.model_gateway.testing import ANSWER_ENV, LATENCY_ENV

TARGET = 1.2


def component(folder: Path, name: str) -> Path:
    """A component that provides sample.greet and asks the model about everything."""
    context_dir = folder / name / "context"
    context_dir.mkdir(parents=True)
    for file_name in ("context.json", "agent-config.json"):
        document = json.loads((SAMPLE / "context" / file_name).read_text(encoding="utf-8"))
        document["component"] = name
        if file_name == "agent-config.json":
            document["escalation_rules"] = []
            document["default_action"] = "ask-model"
            document.pop("service", None)  # nothing is deployed here
        (context_dir / file_name).write_text(json.dumps(document), encoding="utf-8")
    return folder / name


async def one_round(settings: Settings, folder: Path, count: int, tag: str) -> float:
    maintainers = [
        Maintainer(settings, component_dir=component(folder, f"fanout-{tag}-{i}"))
        for i in range(count)
    ]
    await asyncio.gather(*(m.start() for m in maintainers))
    names = {m.component.name for m in maintainers}
    try:
        async with Bus(settings, Source("bench", tag)) as bus:
            decided: set[str] = set()
            all_in = asyncio.Event()

            async def on_decision(msg: Msg) -> None:
                record = MaintainerDecision.model_validate_json(msg.data)
                if record.component in names and record.outcome == "ignored":
                    decided.add(record.component)
                    if decided == names:
                        all_in.set()

            await bus.subscribe_raw(decision_subject(None), on_decision)
            started = time.perf_counter()
            await bus.publish(
                INTERFACE_CHANGED,
                InterfaceChanged(
                    interface="sample.greet",
                    old_version="1.0.0",
                    new_version="1.1.0",
                    compatibility="compatible",
                ),
            )
            await asyncio.wait_for(all_in.wait(), 120)
            return time.perf_counter() - started
    finally:
        await asyncio.gather(*(m.stop() for m in maintainers), return_exceptions=True)


async def main(counts: list[int], latency: float, rounds: int) -> dict[int, list[float]]:
    with tempfile.TemporaryDirectory(prefix="agentbus-fanout-") as scratch:
        root = Path(scratch)
        with EmbeddedNats(root / "nats") as server:
            settings = Settings(
                nats_url=server.url,
                data_dir=root / "agentbus",
                jetstream_storage="memory",
                shutdown_grace=2.0,
            )
            gateway = start_gateway(server.url, latency)
            results: dict[int, list[float]] = {}
            try:
                await wait_for_gateway(settings)
                for round_index in range(rounds):
                    for count in counts:
                        tag = f"r{round_index}n{count}"
                        seconds = await one_round(settings, root / tag, count, tag)
                        results.setdefault(count, []).append(seconds)
            finally:
                gateway.terminate()
                gateway.wait(10)
            return results


def start_gateway(url: str, latency: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGENTBUS_NATS_URL": url,
        ANSWER_ENV: '{"action": "ignore", "reason": "benchmark"}',
        LATENCY_ENV: str(latency),
    }
    target = "agentbus.model_gateway.testing:FakeModelGateway"
    argv = [sys.executable, "-m", "agentbus.framework.cli", "serve", target]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


async def wait_for_gateway(settings: Settings) -> None:
    async with Bus(settings, Source("bench", "wait")) as bus:
        for _ in range(200):
            with contextlib.suppress(BusError):
                await bus.request(CATALOG, CatalogRequest(), timeout=1.0)
                return
            await asyncio.sleep(0.1)
    raise SystemExit("the fake model gateway did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    counts = [int(c) for c in args.counts.split(",")]
    with contextlib.suppress(KeyboardInterrupt):
        figures = asyncio.run(main(counts, args.latency, args.rounds))
        base = statistics.median(figures[counts[0]])
        rows = {
            n: {
                "median_s": statistics.median(times),
                "max_s": max(times),
                "ratio": statistics.median(times) / base,
            }
            for n, times in figures.items()
        }
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"{'N':>4}  {'median s':>9}  {'max s':>7}  {'ratio to N=' + str(counts[0]):>14}")
            for n, row in rows.items():
                print(
                    f"{n:>4}  {row['median_s']:>9.3f}  {row['max_s']:>7.3f}  {row['ratio']:>14.3f}"
                )
        worst = rows[max(counts)]["ratio"]
        verdict = "meets" if worst <= TARGET else "MISSES"
        print(f"ratio at N={max(counts)}: {worst:.3f} ({verdict} the target <= {TARGET})")
