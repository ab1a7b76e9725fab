"""What the malformed-message guard costs: raw nats-py request/reply with and without it.

    python bench/nats_guard_overhead.py [--requests 5000] [--concurrency 64] [--json]

``agentbus.framework.nats_guard`` wraps nats-py's ``Client._process_msg``, which every
received message passes through. Both paths here are plain nats-py (no agentbus
framing), one requester and one responder connection on one embedded nats-server,
a 1 KiB payload; blocks with the guard on and off are interleaved (the wrapper is
installed and removed between blocks) so that machine drift hits both alike.
The ratio is guarded / unguarded: 1.0 means the guard costs nothing measurable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from timing import quantile, throughput, timed

from agentbus.framework import EmbeddedNats
from agentbus.framework.nats_guard import guard_nats_client, is_guarded

PAYLOAD = b"x" * 1024
BLOCKS = 6


def use_guard(on: bool, original: Callable[..., Awaitable[None]]) -> None:
    """Install or remove the guard (the benchmark alone removes it: production never does)."""
    if on and not is_guarded():
        guard_nats_client()
    elif not on:
        Client._process_msg = original  # type: ignore[method-assign]


async def measure(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    original = Client._process_msg
    responder = await nats.connect(url)
    requester = await nats.connect(url)

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    await responder.subscribe("bench.guard", cb=answer)
    await responder.flush()

    async def call() -> object:
        return await requester.request("bench.guard", PAYLOAD, timeout=10)

    latencies: dict[bool, list[float]] = {True: [], False: []}
    rates: dict[bool, list[float]] = {True: [], False: []}
    await timed(call, 200)  # warm up
    try:
        for block in range(BLOCKS):
            for on in (block % 2 == 0, block % 2 == 1):
                use_guard(on, original)
                latencies[on] += await timed(call, requests // BLOCKS)
                rates[on].append(await throughput(call, requests // BLOCKS, concurrency))
    finally:
        use_guard(True, original)
        await requester.close()
        await responder.close()

    def summary(on: bool) -> dict[str, float]:
        return {
            "p50_us": quantile(latencies[on], 0.5) * 1e6,
            "p99_us": quantile(latencies[on], 0.99) * 1e6,
            "throughput_per_s": statistics.median(rates[on]),
        }

    guarded, unguarded = summary(True), summary(False)
    return {
        "guarded": guarded,
        "unguarded": unguarded,
        "p50_ratio": guarded["p50_us"] / unguarded["p50_us"],
        "throughput_ratio": guarded["throughput_per_s"] / unguarded["throughput_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, EmbeddedNats(Path(folder)) as server:
        result = asyncio.run(measure(server.url, args.requests, args.concurrency))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name in ("unguarded", "guarded"):
        row = result[name]
        print(
            f"{name:>9}: p50 {row['p50_us']:7.1f} us  p99 {row['p99_us']:7.1f} us  "
            f"{row['throughput_per_s']:8.0f} req/s"
        )
    print(
        f"guarded / unguarded: p50 {result['p50_ratio']:.3f}x, "
        f"throughput {result['throughput_ratio']:.3f}x"
    )


if __name__ == "__main__":
    main()
