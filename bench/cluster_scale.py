"""Cluster scale: request throughput and durable step latency, 1 node vs 3 nodes with R3.

    python bench/cluster_scale.py [--quick] [--requests 3000] [--concurrency 64]
                                  [--rounds 5] [--steps 1000] [--json]

The setups run side by side, and their measurements alternate block by block, so that
drift on the (shared) machine hits both alike:

* **1 node**: one embedded nats-server (:class:`EmbeddedNats`); the echo service and the
  client both connect to it; the workflow runner's bucket is R1.
* **3 nodes**: the routed cluster ``agentbus up --nats-cluster 3`` starts
  (:class:`EmbeddedCluster`, which waits for the JetStream meta leader); the echo service
  connects to n1 only, the client to n2 only, so every request and its reply cross a
  route; the bucket is R3 (a write is acknowledged once the stream's leader and one
  follower have it), written by a client on the bucket leader's node, and again
  ("via follower") by one on a node that does not lead it (one more route hop each way;
  a service connected to all three lands on either).

Both servers require nkeys, as every server agentbus starts does.

* Throughput: req/s of ``bench/bus_overhead.py``'s echo service (in its own process,
  1 KiB payload) with ``--concurrency`` requests in flight, ``--rounds`` times; the
  figures are medians, the ratios the median of each round's ratio (both setups run
  back to back in a round).
* Durable step: what the workflow runner persists, through its own ``RunStore``: a step
  (``record_step``: a KV create of the ``StepInfo``) and the run record's compare-and-set
  (``update``: a get and an update on the revision), sequential, p50 / p99; and step
  records per second with 32 in flight (in the rounds, as throughput).

Ratios are 3 nodes / 1 node: for latency above 1 is what R3 costs, for throughput below 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus_overhead import ECHO, PAYLOAD, Echo, EchoService
from timing import Call, quantile, throughput, timed

from agentbus.framework import Bus, EmbeddedNats, Settings
from agentbus.framework.auth import (
    ADMIN,
    AuthFolder,
    Identity,
    admin_grants,
    client_grants,
    service_grants,
)
from agentbus.framework.embedded_cluster import EmbeddedCluster
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.workflows import RunInfo, StepInfo
from agentbus.workflow_runner.store import STREAM, RunStore, now

BENCH = Path(__file__).resolve().parent
STEPS_IN_FLIGHT = 32


def make_identities(data_dir: Path) -> Path:
    """The echo service with the grants derived from its class, the client with its own,
    and an admin for the store (the runner's grants need its service around them)."""
    folder = AuthFolder.of(data_dir)
    folder.write(
        [
            Identity(EchoService.name, "service", service_grants(EchoService, EchoService.name)),
            Identity("bench", "client", client_grants("bench", (ECHO,))),
            Identity(ADMIN, "admin", admin_grants()),
        ]
    )
    return folder.server_config


def client_settings(url: str, data_dir: Path, **extra: Any) -> Settings:
    return Settings(nats_url=url, data_dir=data_dir, max_concurrency=1024, **extra)


@contextlib.contextmanager
def echo_service(url: str, data_dir: Path) -> Iterator[None]:
    """bus_overhead.py's echo service in its own process, connected to ``url`` only."""
    argv = [sys.executable, str(BENCH / "bus_overhead.py"), "--serve", "bus", "--url", url]
    child = subprocess.Popen([*argv, "--data-dir", str(data_dir)])
    try:
        yield
    finally:
        child.terminate()
        child.wait(10)


async def until_served(call: Call, what: str) -> None:
    for _ in range(300):
        try:
            await call()
            return
        except Exception:  # not up yet
            await asyncio.sleep(0.05)
    raise SystemExit(f"the echo service on {what} did not answer within 15 s")


@dataclass
class Setup:
    """One side of the comparison: its echo call (if it measures requests), its run store,
    and what it measured."""

    name: str
    echo: Call | None
    store: RunStore
    run_id: str
    index: int = 0
    rps: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)
    steps_per_second: list[float] = field(default_factory=list)

    async def record_step(self) -> None:
        self.index += 1
        step = StepInfo(
            index=self.index,
            name="tool:bench.noop",
            kind="tool",
            idempotency_key=f"{self.run_id}:{self.index}",
            started_at=now(),
            duration_ms=0.1,
            result={"content": "ok"},
        )
        await self.store.record_step(self.run_id, step)

    async def update_run(self) -> None:
        await self.store.update(
            self.run_id, lambda run: run.model_copy(update={"elapsed_seconds": self.index})
        )


async def open_setup(name: str, store_bus: Bus, client: Bus | None) -> Setup:
    store = await RunStore.open(store_bus.js)
    run_id = f"bench-{name}-{time.time_ns()}"
    stamp = now()
    run = RunInfo(
        run_id=run_id, workflow="tool_loop", status="running", created_at=stamp, updated_at=stamp
    )
    await store.create(run)
    if client is None:
        return Setup(name, None, store, run_id)
    message = Echo(payload=PAYLOAD)

    async def echo() -> object:
        return await client.request(ECHO, message, timeout=5)

    await until_served(echo, name)
    return Setup(name, echo, store, run_id)


async def measure(
    setups: list[Setup], requests: int, in_flight: int, steps: int, rounds: int
) -> None:
    """Warm all up, then alternate blocks: sequential steps and updates, then throughput."""
    for setup in setups:
        if setup.echo is not None:
            await timed(setup.echo, 200)
        await timed(setup.record_step, 50)
    block = 100
    for _ in range(max(1, steps // block)):
        for setup in setups:
            setup.step += await timed(setup.record_step, block)
            setup.update += await timed(setup.update_run, block)
    for _ in range(rounds):
        for setup in setups:
            if setup.echo is not None:
                setup.rps.append(await throughput(setup.echo, requests, in_flight))
            setup.steps_per_second.append(
                await throughput(setup.record_step, max(200, steps), STEPS_IN_FLIGHT)
            )


async def bucket_leader(bus: Bus, cluster: EmbeddedCluster) -> tuple[EmbeddedNats, EmbeddedNats]:
    """The node that leads the runner's R3 bucket (created through ``bus``), and another."""
    await RunStore.open(bus.js)
    info = await bus.js.stream_info(STREAM)
    if info.config.num_replicas != 3 or info.cluster is None:
        raise SystemExit(f"the cluster's bucket is R{info.config.num_replicas}, not R3")
    by_name = {node.cluster.name: node for node in cluster if node.cluster is not None}
    leader = by_name[str(info.cluster.leader)]
    return leader, next(node for node in cluster if node is not leader)


async def main(requests: int, in_flight: int, steps: int, rounds: int) -> dict[str, float]:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.ExitStack() as files:
        tmp = Path(files.enter_context(tempfile.TemporaryDirectory()))
        one_dir, three_dir = tmp / "one", tmp / "three"
        single = files.enter_context(EmbeddedNats(one_dir / "nats", auth=make_identities(one_dir)))
        three_auth = make_identities(three_dir)
        started = time.perf_counter()
        cluster = files.enter_context(EmbeddedCluster(three_dir / "nats", 3, auth=three_auth))
        cluster_ready = time.perf_counter() - started
        n1, n2 = cluster.nodes[0], cluster.nodes[1]
        files.enter_context(echo_service(single.url, one_dir))
        files.enter_context(echo_service(n1.url, three_dir))

        async with contextlib.AsyncExitStack() as stack:

            async def connect(url: str, folder: Path, name: str, **extra: Any) -> Bus:
                settings = client_settings(url, folder, **extra)
                return await stack.enter_async_context(Bus(settings, Source("bench", name)))

            def admin(folder: Path, replicas: int) -> dict[str, Any]:
                seed = AuthFolder.of(folder).seed_file(ADMIN)
                return {"nats_nkey_file": seed, "js_replicas": replicas}

            one = await open_setup(
                "one",
                await connect(single.url, one_dir, "one-store", **admin(one_dir, 1)),
                await connect(single.url, one_dir, "one"),
            )
            seeds = await connect(cluster.url, three_dir, "seeds", **admin(three_dir, 3))
            leader, follower = await bucket_leader(seeds, cluster)
            three = await open_setup(
                "three",
                await connect(leader.url, three_dir, "leader", **admin(three_dir, 3)),
                await connect(n2.url, three_dir, "three"),
            )
            via_follower = await open_setup(
                "follower",
                await connect(follower.url, three_dir, "follower", **admin(three_dir, 3)),
                None,
            )
            await measure([one, three, via_follower], requests, in_flight, steps, rounds)
    result = {"cluster_ready_s": cluster_ready}
    for key, setup in (("one", one), ("three", three), ("follower", via_follower)):
        if setup.rps:
            result[f"{key}_rps"] = statistics.median(setup.rps)
        result[f"{key}_step_p50_ms"] = quantile(setup.step, 0.5) * 1e3
        result[f"{key}_step_p99_ms"] = quantile(setup.step, 0.99) * 1e3
        result[f"{key}_update_p50_ms"] = quantile(setup.update, 0.5) * 1e3
        result[f"{key}_update_p99_ms"] = quantile(setup.update, 0.99) * 1e3
        result[f"{key}_steps_per_second"] = statistics.median(setup.steps_per_second)
    for figure in FIGURES:
        for key in ("three", "follower"):
            if f"{key}_{figure}" in result:
                result[f"{key}_{figure}_ratio"] = (
                    result[f"{key}_{figure}"] / result[f"one_{figure}"]
                )
    for key, setup in (("three", three), ("follower", via_follower)):  # round by round
        if setup.rps:
            result[f"{key}_rps_ratio"] = paired(setup.rps, one.rps)
        result[f"{key}_steps_per_second_ratio"] = paired(
            setup.steps_per_second, one.steps_per_second
        )
    result["r3_cost_per_step_ms"] = result["three_step_p50_ms"] - result["one_step_p50_ms"]
    result["r3_cost_per_step_via_follower_ms"] = (
        result["follower_step_p50_ms"] - result["one_step_p50_ms"]
    )
    return result


def paired(measured: list[float], base: list[float]) -> float:
    """The median of the ratios of rounds run back to back (drift cancels within a round)."""
    return statistics.median(m / b for m, b in zip(measured, base, strict=True))


FIGURES = (
    "rps",
    "step_p50_ms",
    "step_p99_ms",
    "update_p50_ms",
    "update_p99_ms",
    "steps_per_second",
)
LABELS = (
    ("echo req/s", "{:.0f}"),
    ("step record p50 (ms)", "{:.2f}"),
    ("step record p99 (ms)", "{:.2f}"),
    ("run update p50 (ms)", "{:.2f}"),
    ("run update p99 (ms)", "{:.2f}"),
    (f"step records/s, {STEPS_IN_FLIGHT} in flight", "{:.0f}"),
)


def report(result: dict[str, float], requests: int, in_flight: int, steps: int) -> str:
    lines = [
        f"1 node (R1) vs 3 nodes (R3); {requests} requests per round, {in_flight} in flight",
        f"(ratios: median of the rounds'); {steps} sequential steps and run updates each",
        f"cluster up with a meta leader in {result['cluster_ready_s']:.1f} s",
        "3 nodes: echo client on n2, service on n1; store client on the bucket's leader",
        "via follower: store client on a node that does not lead the bucket",
        f"{'':30}{'1 node':>8}{'3 nodes':>9}{'ratio':>7}{'via follower':>14}{'ratio':>7}",
    ]
    for figure, (label, form) in zip(FIGURES, LABELS, strict=True):
        row = f"{label:30}{form.format(result[f'one_{figure}']):>8}"
        for key, width in (("three", 9), ("follower", 14)):
            if f"{key}_{figure}" in result:
                row += f"{form.format(result[f'{key}_{figure}']):>{width}}"
                row += f"{result[f'{key}_{figure}_ratio']:7.2f}"
            else:
                row += f"{'-':>{width}}{'-':>7}"
        lines.append(row)
    lines.append(
        f"what R3 costs per step (p50): {result['r3_cost_per_step_ms']:+.2f} ms on the leader, "
        f"{result['r3_cost_per_step_via_follower_ms']:+.2f} ms via a follower"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a third of the work")
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds")
    parser.add_argument("--steps", type=int, default=1000, help="sequential steps per setup")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.steps = min(args.requests, 1500), min(args.steps, 300)
        args.rounds = min(args.rounds, 2)
    began = time.perf_counter()
    figures = asyncio.run(main(args.requests, args.concurrency, args.steps, args.rounds))
    figures["total_s"] = time.perf_counter() - began
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(report(figures, args.requests, args.concurrency, args.steps))
        print(
            f"took {figures['total_s']:.0f} s on {platform.node()} ({os.cpu_count()} cpus, "
            f"load average {os.getloadavg()[0]:.1f})"
        )
