"""Bus overhead: raw nats-py request/reply vs agentbus request/reply, same server, same run.

    python bench/bus_overhead.py [--requests 5000] [--concurrency 64] [--layout both] [--json]

Both paths send a 1 KiB payload through one embedded nats-server, from one
client connection to one serving connection. The agentbus path includes what a
real call pays: metadata headers, pydantic validation on both sides, the
service's dispatch, metrics and ``$SRV`` stats. Blocks of the two paths are
interleaved so that machine drift hits both alike.

Layouts: ``process`` (the deployed shape, and the one the targets are judged
on) runs each server side in its own process, as services run; ``shared`` runs
client and servers on one event loop, where every microsecond of Python on
either side shows in the throughput.

Targets (issue 2): sequential p50 <= 1.15 x raw; concurrent throughput >= 0.85 x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
from nats.aio.msg import Msg
from timing import Call, quantile, throughput, timed

from agentbus.framework import (
    Bus,
    EmbeddedNats,
    MessageContext,
    Service,
    Settings,
    handles,
    serve,
)
from agentbus.framework.auth import AuthFolder, Grants, Identity, client_grants, service_grants
from agentbus.interfaces import BusMessage, Source, request_interface

PAYLOAD = "x" * 1024


class Echo(BusMessage):
    payload: str


ECHO = request_interface("bench.echo", "1.0.0", request=Echo, reply=Echo)


class EchoService(Service):
    name = "bench-echo"
    version = "1.0.0"

    @handles(ECHO)
    async def echo(self, request: Echo, ctx: MessageContext) -> Echo:
        return Echo(payload=request.payload)


RAW = "raw"
"""The baseline's identity: publish bench.raw, answer it, read its own inbox."""


def make_identities(data_dir: Path) -> None:
    """Authentication on, as on every server agentbus starts: the echo service with the
    grants derived from its class, the agentbus client, and the baseline's identity."""
    AuthFolder.of(data_dir).write(
        [
            Identity(EchoService.name, "service", service_grants(EchoService, EchoService.name)),
            Identity("bench", "client", client_grants("bench", (ECHO,))),
            Identity(
                RAW,
                "client",
                Grants.of(["bench.raw"], ["bench.raw q", "_INBOX_raw.>"], responses=True),
            ),
        ]
    )


async def raw_connect(url: str, data_dir: Path) -> nats.NATS:
    seed = AuthFolder.of(data_dir).seed_file(RAW)
    if not seed.is_file():  # --no-auth
        return await nats.connect(url)
    return await nats.connect(url, nkeys_seed=str(seed), inbox_prefix="_INBOX_raw")


async def serve_raw(url: str, data_dir: Path, ready: asyncio.Event | None = None) -> None:
    """The baseline server: a nats-py callback that answers with the request's bytes."""
    connection = await raw_connect(url, data_dir)

    async def respond(msg: Msg) -> None:
        await connection.publish(msg.reply, msg.data)

    await connection.subscribe("bench.raw", queue="q", cb=respond)
    await connection.flush()
    if ready is not None:
        ready.set()
        return
    await asyncio.Event().wait()


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(nats_url=url, data_dir=data_dir, max_concurrency=1024)


@contextlib.contextmanager
def server_processes(url: str, data_dir: Path) -> Iterator[None]:
    """Both server sides as child processes; waits until each answers."""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve", role, "--url", url, "--data-dir", str(data_dir)]
        )
        for role in ("raw", "bus")
    ]
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(10)


async def wait_until_served(raw_call: Call, bus_call: Call) -> None:
    for call in (raw_call, bus_call):
        for _ in range(200):
            try:
                await call()
                break
            except Exception:  # not up yet
                await asyncio.sleep(0.05)


async def main(
    requests: int, in_flight: int, layout: str, *, auth: bool = True
) -> dict[str, float]:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.ExitStack() as files:
        tmp = files.enter_context(tempfile.TemporaryDirectory())
        if auth:
            make_identities(Path(tmp))
        config = AuthFolder.of(Path(tmp)).server_config if auth else None
        server = files.enter_context(EmbeddedNats(Path(tmp), auth=config))
        settings = settings_for(server.url, Path(tmp))
        raw_client = await raw_connect(server.url, Path(tmp))
        data = Echo(payload=PAYLOAD).model_dump_json().encode()

        async def raw_call() -> object:
            return await raw_client.request("bench.raw", data, timeout=5)

        message = Echo(payload=PAYLOAD)
        async with contextlib.AsyncExitStack() as stack:
            if layout == "shared":
                await serve_raw(server.url, Path(tmp), asyncio.Event())
                await stack.enter_async_context(EchoService(settings))
            else:
                stack.enter_context(server_processes(server.url, Path(tmp)))
            bus = await stack.enter_async_context(Bus(settings, Source("bench")))

            async def bus_call() -> object:
                return await bus.request(ECHO, message, timeout=5)

            await wait_until_served(raw_call, bus_call)

            async def bus_call() -> object:
                return await bus.request(ECHO, message, timeout=5)

            for call in (raw_call, bus_call):  # warm up both paths
                await timed(call, 500)
            raw_lat: list[float] = []
            bus_lat: list[float] = []
            block = 500
            for _ in range(max(1, requests // block)):
                raw_lat += await timed(raw_call, block)
                bus_lat += await timed(bus_call, block)
            raw_rps, bus_rps = [], []
            for _ in range(3):
                raw_rps.append(await throughput(raw_call, requests * 2, in_flight))
                bus_rps.append(await throughput(bus_call, requests * 2, in_flight))
        await raw_client.close()
    result = {
        "raw_p50_us": quantile(raw_lat, 0.5) * 1e6,
        "raw_p99_us": quantile(raw_lat, 0.99) * 1e6,
        "bus_p50_us": quantile(bus_lat, 0.5) * 1e6,
        "bus_p99_us": quantile(bus_lat, 0.99) * 1e6,
        "raw_rps": statistics.median(raw_rps),
        "bus_rps": statistics.median(bus_rps),
    }
    result["p50_ratio"] = result["bus_p50_us"] / result["raw_p50_us"]
    result["p99_ratio"] = result["bus_p99_us"] / result["raw_p99_us"]
    result["throughput_ratio"] = result["bus_rps"] / result["raw_rps"]
    return result


def report(result: dict[str, float], requests: int, in_flight: int, layout: str) -> str:
    judged = layout == "process"
    p50_ok = ("ok" if result["p50_ratio"] <= 1.15 else "MISSED") if judged else "(not judged)"
    rps_ok = (
        ("ok" if result["throughput_ratio"] >= 0.85 else "MISSED") if judged else "(not judged)"
    )
    return "\n".join(
        [
            f"layout {layout}: 1 KiB payload, {requests} sequential requests per path, "
            f"{in_flight} in flight for throughput",
            f"{'':24}{'raw nats-py':>14}{'agentbus':>14}{'ratio':>9}",
            f"{'sequential p50 (us)':24}{result['raw_p50_us']:14.1f}{result['bus_p50_us']:14.1f}"
            f"{result['p50_ratio']:9.3f}  target <= 1.15: {p50_ok}",
            f"{'sequential p99 (us)':24}{result['raw_p99_us']:14.1f}{result['bus_p99_us']:14.1f}"
            f"{result['p99_ratio']:9.3f}",
            f"{'concurrent req/s':24}{result['raw_rps']:14.0f}{result['bus_rps']:14.0f}"
            f"{result['throughput_ratio']:9.3f}  target >= 0.85: {rps_ok}",
        ]
    )


async def serve_role(role: str, url: str, data_dir: Path) -> None:
    if role == "raw":
        await serve_raw(url, data_dir)
    else:
        await serve(EchoService(settings_for(url, data_dir)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="sequential requests per path")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--layout", choices=["process", "shared", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--no-auth", action="store_true", help="an anonymous server (to compare with)"
    )
    parser.add_argument("--serve", choices=["raw", "bus"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        logging.basicConfig(level=logging.WARNING)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_role(args.serve, args.url, args.data_dir))
        sys.exit(0)
    layouts = ["process", "shared"] if args.layout == "both" else [args.layout]
    results = {}
    for layout in layouts:
        figures = main(args.requests, args.concurrency, layout, auth=not args.no_auth)
        results[layout] = asyncio.run(figures)
        if not args.json:
            print(report(results[layout], args.requests, args.concurrency, layout), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
