"""Overload: a 10,000-request burst at a service with 4 slots, agentbus vs an unbounded queue.

    python bench/overload.py [--requests 10000] [--timeout 2.0] [--work 0.002] [--json]

Both servers run in their own process and do the same work (``--work`` seconds of sleep per
request, at most 4 at once); every caller waits ``--timeout`` seconds. The agentbus path is
a :class:`Service` with ``max_concurrency=4`` and the default queue (1024): one more request
(or one whose caller would give up before its turn) is answered ``overloaded`` at once, a
queued request whose caller's deadline passed is dropped unrun, and callers
(``Bus.request``) retry ``overloaded`` with jitter within their timeout. The baseline is
what agentbus did before: a plain nats-py queue subscription that takes every message and
waits for one of 4 slots, with no deadline. Callers start as fast as this one process can
make them, in batches of 100 (so that the first requests leave before the last are made).

Figures, per path: callers answered (ok, or an explicit error such as ``overloaded``),
callers left without any reply (they timed out), handler runs for callers already gone
(the handler started after its caller's deadline: wasted work), requests dropped unrun, and
how long the server was still busy after the last caller gave up. The server is anonymous
(no nkeys): only outcomes are compared here; bench/bus_overhead.py measures the request path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.msg import Msg

from agentbus.framework import (
    Bus,
    EmbeddedNats,
    MessageContext,
    Service,
    Settings,
    handles,
    serve,
)
from agentbus.framework.errors import RemoteError, RequestTimeoutError
from agentbus.interfaces import BusMessage, Source, request_interface

SLOTS = 4
BATCH = 100
BASELINE_SUBJECT = "bench.overload.baseline"


class Work(BusMessage):
    deadline: float
    """Wall-clock time (``time.time()``) at which the caller stops waiting."""
    seconds: float


class Done(BusMessage):
    ok: bool = True


WORK = request_interface("bench.overload", "1.0.0", request=Work, reply=Done)


class Tally:
    """What a server did: handler runs, and runs for callers already gone."""

    def __init__(self) -> None:
        self.runs = 0
        self.late = 0

    async def work(self, request: Work) -> None:
        self.runs += 1
        if time.time() > request.deadline:
            self.late += 1
        await asyncio.sleep(request.seconds)

    async def answer_stats(self, connection: Any, msg: Msg, **more: float) -> None:
        await connection.publish(msg.reply, json.dumps({**vars(self), **more}).encode())


class OverloadService(Service):
    name = "bench-overload"
    version = "1.0.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = Tally()

    async def initialize(self) -> None:
        async def stats(msg: Msg) -> None:
            registry = self.metrics.registry
            labels = {"service": self.name, "subject": "agentbus.bench.overload.v1"}
            await self.tally.answer_stats(
                self.bus.nc,
                msg,
                received=registry.get_sample_value("agentbus_requests_total", labels) or 0,
                dropped=registry.get_sample_value("agentbus_requests_dropped_total", labels) or 0,
            )

        await self.bus.subscribe_raw("bench.overload.stats.ours", stats)

    @handles(WORK)
    async def work(self, request: Work, ctx: MessageContext) -> Done:
        await self.tally.work(request)
        return Done()


async def serve_baseline(url: str) -> None:
    """The unbounded baseline: every delivered message waits for one of 4 slots."""
    connection = await nats.connect(url)
    tally = Tally()
    slots = asyncio.Semaphore(SLOTS)
    running: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        try:
            await tally.work(Work.model_validate_json(msg.data))
            await connection.publish(msg.reply, Done().model_dump_json().encode())
        finally:
            slots.release()

    async def take(msg: Msg) -> None:  # the callback waits: nats-py queues the rest
        await slots.acquire()
        task = asyncio.get_running_loop().create_task(handle(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    async def stats(msg: Msg) -> None:
        await tally.answer_stats(connection, msg)

    await connection.subscribe(BASELINE_SUBJECT, queue="q", cb=take, pending_msgs_limit=65536)
    await connection.subscribe("bench.overload.stats.baseline", cb=stats)
    await connection.flush()
    await asyncio.Event().wait()


@contextlib.contextmanager
def server_process(role: str, url: str, data_dir: Path) -> Iterator[None]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", role, "--url", url, "--data-dir", str(data_dir)]
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(15)


async def stats(client: Any, role: str) -> dict[str, Any]:
    msg = await client.request(f"bench.overload.stats.{role}", b"", timeout=2)
    figures: dict[str, Any] = json.loads(msg.data)
    return figures


async def wait_until_served(client: Any, role: str) -> None:
    for _ in range(400):
        with contextlib.suppress(Exception):
            await stats(client, role)
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the {role} server did not answer within 20 s")


async def busy_after(client: Any, role: str) -> tuple[dict[str, Any], float]:
    """Wait until the server's run count stops moving; returns its stats and for how long
    it kept running handlers after this call."""
    started = time.monotonic()
    last = await stats(client, role)
    moved_at = started
    while time.monotonic() - moved_at < 1.0 and time.monotonic() - started < 60:
        await asyncio.sleep(0.1)
        now = await stats(client, role)
        if now != last:
            last, moved_at = now, time.monotonic()
    return last, max(0.0, moved_at - started)


async def launch(call: Callable[[], Awaitable[Done]], requests: int) -> list[object]:
    """All callers as fast as this process can start them: in batches of :data:`BATCH`,
    letting the connection send each batch (one batch of 10,000 would leave the first
    request in the client's buffer until the last was made)."""
    tasks = []
    for start in range(0, requests, BATCH):
        tasks += [asyncio.ensure_future(call()) for _ in range(min(BATCH, requests - start))]
        await asyncio.sleep(0)
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def outcome(result: object) -> str:
    if isinstance(result, Done):
        return "ok"
    if isinstance(result, RemoteError):
        return result.code
    if isinstance(result, RequestTimeoutError | nats.errors.TimeoutError):
        return "no reply"
    return type(result).__name__


async def burst_ours(
    url: str, data_dir: Path, requests: int, timeout: float, work: float
) -> tuple[Counter[str], list[float]]:
    """Outcomes per caller, and the retry-after hints of the ``overloaded`` errors raised."""
    settings = Settings(nats_url=url, data_dir=data_dir)
    async with Bus(settings, Source("bench")) as bus:

        async def call() -> Done:
            request = Work(deadline=time.time() + timeout, seconds=work)
            return await bus.request(WORK, request, timeout=timeout)

        results = await launch(call, requests)
    hints = sorted(
        r.reply.retry_after
        for r in results
        if isinstance(r, RemoteError) and r.reply.retry_after is not None
    )
    return Counter(outcome(r) for r in results), hints


async def burst_baseline(client: Any, requests: int, timeout: float, work: float) -> Counter[str]:
    async def call() -> Done:
        request = Work(deadline=time.time() + timeout, seconds=work)
        msg = await client.request(
            BASELINE_SUBJECT, request.model_dump_json().encode(), timeout=timeout
        )
        return Done.model_validate_json(msg.data)

    results = await launch(call, requests)
    return Counter(outcome(r) for r in results)


async def main(requests: int, timeout: float, work: float) -> dict[str, dict[str, Any]]:
    logging.basicConfig(level=logging.ERROR)
    figures: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as files:
        tmp = Path(files.enter_context(tempfile.TemporaryDirectory()))
        server = files.enter_context(EmbeddedNats(tmp / "nats"))
        client = await nats.connect(server.url)
        for role in ("ours", "baseline"):
            with server_process(role, server.url, tmp):
                await wait_until_served(client, role)
                started = time.monotonic()
                hints: list[float] = []
                if role == "ours":
                    counts, hints = await burst_ours(server.url, tmp, requests, timeout, work)
                else:
                    counts = await burst_baseline(client, requests, timeout, work)
                took = time.monotonic() - started
                tally, busy = await busy_after(client, role)
            figures[role] = {
                "outcomes": dict(counts),
                "no_reply": counts.get("no reply", 0),
                "answered": requests - counts.get("no reply", 0),
                "runs": tally["runs"],
                "runs_for_gone_callers": tally["late"],
                "burst_seconds": round(took, 2),
                "busy_after_seconds": round(busy, 2),
                "received": int(tally.get("received", requests)),
                "dropped_unrun": int(tally.get("dropped", 0)),
                "median_retry_after": hints[len(hints) // 2] if hints else None,
            }
        await client.close()
    return figures


def ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.3f}" if baseline else "-"


def report(figures: dict[str, dict[str, Any]], requests: int, timeout: float, work: float) -> str:
    ours, base = figures["ours"], figures["baseline"]
    lines = [
        f"{requests} requests at once, {SLOTS} slots, {work * 1000:g} ms of work each, "
        f"callers wait {timeout:g} s",
        f"{'':34}{'agentbus':>12}{'unbounded':>12}{'ratio':>9}",
    ]
    for label, key in (
        ("callers answered (ok or error)", "answered"),
        ("callers without a reply", "no_reply"),
        ("requests received (with retries)", "received"),
        ("handler runs", "runs"),
        ("runs for callers already gone", "runs_for_gone_callers"),
        ("dropped unrun (deadline passed)", "dropped_unrun"),
        ("busy after the burst (s)", "busy_after_seconds"),
    ):
        lines.append(f"{label:34}{ours[key]:>12}{base[key]:>12}{ratio(ours[key], base[key]):>9}")
    lines.append(
        f"agentbus outcomes: {ours['outcomes']}, median retry_after {ours['median_retry_after']} s"
    )
    lines.append(f"unbounded outcomes: {base['outcomes']}")
    return "\n".join(lines)


async def serve_role(role: str, url: str, data_dir: Path) -> None:
    if role == "baseline":
        await serve_baseline(url)
    else:
        await serve(
            OverloadService(Settings(nats_url=url, data_dir=data_dir, max_concurrency=SLOTS))
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10000, help="requests in the burst")
    parser.add_argument("--timeout", type=float, default=2.0, help="each caller's timeout (s)")
    parser.add_argument("--work", type=float, default=0.002, help="seconds of work per request")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        logging.basicConfig(level=logging.WARNING)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_role(args.serve, args.url, args.data_dir))
        sys.exit(0)
    results = asyncio.run(main(args.requests, args.timeout, args.work))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report(results, args.requests, args.timeout, args.work))
