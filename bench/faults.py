"""Faults: what survives kill -9 and SIGTERM, against the same work with no fault.

    python bench/faults.py [--quick] [--only events,runner,nats,shutdown] [--json]

Every scenario runs on its own embedded nats-server (loopback, nkeys as always) with the
services of ``bench/faults_services.py`` as child processes (``agentbus serve``), which
leave what they did in files; each prints one line with its baseline:

- ``events``: 2,000 durable events to a subscriber (4 at once); kill -9 when half are
  handled, start it again; events never handled (lost) and handled twice. Baseline: no kill.
- ``runner``: 10 runs of ``faults.hold`` (4 durable steps of 1 s); once every run has done
  its first step, kill -9 the runner and start another; seconds from the kill until every
  run finished. Baseline: the same runs, no kill, from the same point.
- ``nats``: the same runs; kill -9 nats-server, restart it 2 s later on its store; seconds
  until every run finished (runs not finished after 90 s are counted). Baseline: no crash.
- ``shutdown``: 2,000 requests queued at a service with 4 slots and 50 ms of work each,
  then SIGTERM with ``shutdown_grace=2``: callers answered ok, ``unavailable``, not at all,
  and seconds from SIGTERM to exit. Baseline: a nats-py queue subscription that waits for
  a slot in its callback and ``drain()``s on SIGTERM (the framework before issue 14),
  killed if still there at grace + 5 s as a supervisor would.

Durable steps are at-least-once: a step that finished but was not yet recorded when its
runner died runs again; the ``runner`` and ``nats`` lines count those repeats too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
from faults_services import DURABLE, RAW_SUBJECT, TICK, WORK, Tick, Work

from agentbus.framework import (
    Bus,
    EmbeddedNats,
    NoRespondersError,
    NotConnectedError,
    RemoteError,
    RequestTimeoutError,
    Settings,
)
from agentbus.framework.auth import ADMIN, AuthFolder, Identity, admin_grants
from agentbus.framework.jetstream import EVENTS
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.workflows import (
    WORKFLOWS_GET,
    WORKFLOWS_START,
    GetRequest,
    RunInfo,
    StartRequest,
)

HERE = Path(__file__).resolve().parent
RUNNER = "agentbus.workflow_runner.service:WorkflowRunner"
ENDED = ("finished", "failed", "cancelled")
GRACE = 2.0
KILL_AFTER = GRACE + 5.0
"""Seconds after SIGTERM at which a supervisor kills what is still there (as the probe of
issue 14 did)."""
runner_ack_wait = 5.0
"""The runner's lease (``AGENTBUS_RUNNER_ACK_WAIT``; default 30 s): how long a dead
runner's runs wait before another takes them."""
EVENT_ACK_WAIT = 5.0
WAIT_RUNS = 90.0
Waiting = Callable[[], Awaitable[bool]]
Call = Callable[[int, float], Coroutine[Any, Any, str]]
"""``call(n, timeout)`` → ``ok``, an error code, or ``timeout``."""


class Child:
    """One service process; its output goes to a log file (a pipe nobody reads would fill
    up and stall it)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def exited(self, timeout: float) -> float | None:
        """Seconds until the process exits (from now), or None if it is still there."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is None or self.process.poll() is not None:
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        return None


@dataclass
class Cluster:
    """An embedded nats-server with the admin identity, and the children started on it."""

    folder: Path
    server: EmbeddedNats
    seed: Path
    children: list[Child] = field(default_factory=list)

    def settings(self) -> Settings:
        return Settings(
            nats_url=self.server.url, nats_nkey_file=self.seed, data_dir=self.folder / "bench"
        )

    def bus(self, *, patient: bool = False) -> Bus:
        return Bus(self.settings(), Source("bench-faults"), patient=patient)

    def env(self, instance: str, **extra: str) -> dict[str, str]:
        kept = {k: v for k, v in os.environ.items() if not k.startswith("AGENTBUS_")}
        path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        return {
            **kept,
            "PYTHONPATH": path,
            "AGENTBUS_NATS_URL": self.server.url,
            "AGENTBUS_NATS_NKEY_FILE": str(self.seed),
            "AGENTBUS_DATA_DIR": str(self.folder / instance),
            **extra,
        }

    def serve(self, target: str, instance: str, **env: str) -> Child:
        argv = [sys.executable, "-m", "agentbus.framework.cli", "serve", target]
        argv += ["--instance", instance]
        log = self.folder / f"{instance}.log"
        child = Child(argv, self.env(instance, **env), log).start()
        self.children.append(child)
        return child

    def script(self, argv: list[str], instance: str, **env: str) -> Child:
        child = Child([sys.executable, *argv], self.env(instance, **env), self.folder / "raw.log")
        self.children.append(child.start())
        return child


keep_files = False
nats_down = 2.0
"""Seconds nats-server stays down in the ``nats`` scenario."""
KEPT: list[Path] = []
"""With ``--keep``: the scenarios' folders (logs, trace files, stores), left to read."""


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        if keep_files:
            folder = Path(tempfile.mkdtemp(prefix="faults-"))
            KEPT.append(folder)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        auth = AuthFolder.of(folder)
        auth.write([Identity(ADMIN, "admin", admin_grants())])
        server = EmbeddedNats(folder / "nats", auth=auth.server_config).start()
        made = Cluster(folder, server, auth.seed_file(ADMIN))
        try:
            yield made
        finally:
            for child in made.children:
                child.kill()
            server.stop()


async def until(what: str, check: Waiting, timeout: float, pause: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(pause)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else []


# -- events under kill -9 of their subscriber ----------------------------------------------


async def events(total: int, kill: bool) -> dict[str, float]:
    with cluster() as c:
        record = c.folder / "events.txt"
        env = {"FAULTS_EVENTS_FILE": str(record), "FAULTS_ACK_WAIT": str(EVENT_ACK_WAIT)}
        recorder = c.serve("faults_services:Recorder", "rec-1", **env)

        def handled() -> list[int]:
            return [n for n in map(int, lines(record)) if n >= 0]

        async with c.bus() as bus:

            async def probed() -> bool:  # the consumer sees only events published after it
                with contextlib.suppress(NoRespondersError):
                    await bus.publish(TICK, Tick(n=-1))
                return bool(lines(record))

            await until("the recorder consuming", probed, 30, pause=0.3)
            started = time.monotonic()

            async def publish_all() -> None:
                for first in range(0, total, 100):
                    batch = range(first, min(first + 100, total))
                    await asyncio.gather(*(bus.publish(TICK, Tick(n=n)) for n in batch))

            publishing = asyncio.create_task(publish_all())
            if kill:

                async def half() -> bool:
                    return len(handled()) >= total // 2

                await until("half the events handled", half, 60, pause=0.005)
                recorder.kill()
                c.serve("faults_services:Recorder", "rec-1", **env)
            await publishing

            async def all_seen() -> bool:
                return len(set(handled())) >= total

            with contextlib.suppress(TimeoutError):
                await until("every event handled", all_seen, 60 + 3 * EVENT_ACK_WAIT)
            seconds = time.monotonic() - started

            async def settled() -> bool:  # nothing left to (re)deliver: no late duplicate
                info = await bus.js.consumer_info(EVENTS.name, DURABLE)
                return bool(info.num_pending == 0 and info.num_ack_pending == 0)

            with contextlib.suppress(TimeoutError):
                await until("the consumer settled", settled, 3 * EVENT_ACK_WAIT, pause=0.2)
        seen = Counter(handled())
        return {
            "events": total,
            "lost": sum(1 for n in range(total) if n not in seen),
            "duplicated": sum(count - 1 for count in seen.values()),
            "seconds": seconds,
        }


# -- runs after a runner kill -9 or a nats-server crash ------------------------------------


async def start_runs(bus: Bus, count: int, steps: int, seconds: float) -> list[str]:
    async def start(run_id: str, data: dict[str, Any]) -> None:
        request = StartRequest(workflow="faults.hold", input=data, run_id=run_id)
        await bus.request(WORKFLOWS_START, request, timeout=10)

    async def probe() -> bool:
        try:
            await start("probe", {"steps": 1, "seconds": 0})
        except (NoRespondersError, RequestTimeoutError):
            return False
        return True

    await until("the runner serving", probe, 60, pause=0.2)
    run_ids = [f"hold-{n:02d}" for n in range(count)]
    await asyncio.gather(*(start(r, {"steps": steps, "seconds": seconds}) for r in run_ids))
    return run_ids


async def ended_runs(bus: Bus, run_ids: list[str], timeout: float) -> dict[str, RunInfo]:
    """Poll until every run ended or ``timeout``; the runs last seen."""
    last: dict[str, RunInfo] = {}

    async def get(run_id: str) -> None:
        with contextlib.suppress(
            NoRespondersError, RequestTimeoutError, NotConnectedError, RemoteError
        ):
            reply = await bus.request(WORKFLOWS_GET, GetRequest(run_id=run_id), timeout=2)
            last[run_id] = reply.run

    async def all_ended() -> bool:
        await asyncio.gather(*(get(r) for r in run_ids if r not in last or not ended(last[r])))
        return all(r in last and ended(last[r]) for r in run_ids)

    with contextlib.suppress(TimeoutError):
        await until("every run ended", all_ended, timeout, pause=0.2)
    return last


def ended(run: RunInfo) -> bool:
    return run.status in ENDED


async def runs(fault: str, count: int, steps: int = 4, seconds: float = 1.0) -> dict[str, float]:
    """``fault``: ``none``, ``runner`` (kill -9, start another) or ``nats`` (kill -9, back
    2 s later on its store)."""
    with cluster() as c:
        marks = c.folder / "steps.txt"
        env = {
            "FAULTS_STEPS_FILE": str(marks),
            "AGENTBUS_RUNNER_APPS": "faults_services:app",
            "AGENTBUS_RUNNER_ACK_WAIT": str(runner_ack_wait),
        }
        runner = c.serve(RUNNER, "runner-1", **env)
        async with c.bus() as bus:
            run_ids = await start_runs(bus, count, steps, seconds)

        async def first_steps_done() -> bool:
            return len([m for m in lines(marks) if m.startswith("hold-")]) >= count

        await until("every run past its first step", first_steps_done, 60)
        at_fault = time.time()
        if fault == "runner":
            runner.kill()
            c.serve(RUNNER, "runner-2", **env)
        elif fault == "nats":
            c.server.kill()
            await asyncio.sleep(nats_down)
            c.server.start()
        async with c.bus(patient=True) as bus:
            last = await ended_runs(bus, run_ids, WAIT_RUNS)
        finished = [last[r] for r in run_ids if r in last and last[r].status == "finished"]
        ends = [datetime.fromisoformat(r.updated_at).timestamp() for r in finished]
        step_marks = Counter(m for m in lines(marks) if m.startswith("hold-"))
        return {
            "runs": count,
            "seconds": max(ends) - at_fault if len(finished) == count else float("nan"),
            "finished": len(finished),
            "failed": sum(1 for r in last.values() if r.status == "failed"),
            "not_ended": count - sum(1 for r in last.values() if ended(r)),
            "attempts": sum(r.attempts for r in last.values()),
            "steps_repeated": sum(n - 1 for n in step_marks.values()),
            "steps_missing": count * steps - len(step_marks),
        }


# -- shutdown under a backlog --------------------------------------------------------------


async def shutdown(requests: int, ours: bool, work: float = 0.05) -> dict[str, float]:
    with cluster() as c:
        env = {
            "FAULTS_WORK": str(work),
            "AGENTBUS_MAX_CONCURRENCY": "4",
            "AGENTBUS_MAX_QUEUE": str(requests * 2),
            "AGENTBUS_SHUTDOWN_GRACE": str(GRACE),
        }
        if ours:
            server = c.serve("faults_services:Slow", "slow-1", **env)
        else:
            argv = [str(HERE / "faults_services.py"), c.server.url, str(c.seed)]
            server = c.script(argv, "raw-slow", **env)
        async with callers(c, ours) as call:

            async def answering() -> bool:
                with contextlib.suppress(Exception):
                    return await call(-1, 2.0) == "ok"
                return False

            await until("the service answering", answering, 60, pause=0.2)
            sent = [asyncio.create_task(call(n, 120.0)) for n in range(requests)]
            await asyncio.sleep(1.0)  # every request is at the service: a backlog of ~25 s
            answered_before = sum(1 for t in sent if t.done())
            server.signal(signal.SIGTERM)
            exit_seconds = await server.exited(KILL_AFTER)
            killed = exit_seconds is None
            if killed:
                server.kill()
            await asyncio.sleep(1.0)  # replies on the way; no reply can come after this
            for task in sent:
                task.cancel()
            outcomes = Counter(
                t.result() if t.done() and not t.cancelled() else "none" for t in sent
            )
        return {
            "requests": requests,
            "ok_before_sigterm": answered_before,
            "ok": outcomes.pop("ok", 0),
            "unavailable": outcomes.pop("unavailable", 0),
            "no_reply": outcomes.pop("none", 0),
            "other": sum(outcomes.values()),
            "exit_seconds": KILL_AFTER if killed else exit_seconds or 0.0,
            "killed": float(killed),
        }


@contextlib.asynccontextmanager
async def callers(c: Cluster, ours: bool) -> AsyncIterator[Call]:
    """The callers of :class:`Slow` (through a bus) or of the baseline (plain nats-py)."""
    if ours:
        async with c.bus() as bus:

            async def call(n: int, timeout: float) -> str:
                try:
                    await bus.request(WORK, Work(n=n), timeout=timeout)
                except RemoteError as exc:
                    return str(exc.code)
                except RequestTimeoutError:
                    return "timeout"
                return "ok"

            yield call
        return
    connection = await nats.connect(c.server.url, nkeys_seed=str(c.seed))

    async def raw_call(n: int, timeout: float) -> str:
        try:
            await connection.request(RAW_SUBJECT, Work(n=n).model_dump_json().encode(), timeout)
        except nats.errors.NoRespondersError:
            return "no_responders"
        except nats.errors.TimeoutError:
            return "timeout"
        return "ok"

    try:
        yield raw_call
    finally:
        await connection.close()


# -- report --------------------------------------------------------------------------------


def row(name: str, ours: dict[str, float], base: dict[str, float]) -> str:
    if name == "events":
        return (
            f"events: {ours['events']:.0f} events, subscriber kill -9 at half: lost "
            f"{ours['lost']:.0f}, duplicated {ours['duplicated']:.0f}, all handled in "
            f"{ours['seconds']:.1f} s | no kill: lost {base['lost']:.0f}, duplicated "
            f"{base['duplicated']:.0f}, {base['seconds']:.1f} s | ratio "
            f"{ours['seconds'] / base['seconds']:.2f}"
        )
    if name in ("runner", "nats"):
        what = (
            "runner kill -9 + another"
            if name == "runner"
            else f"nats-server kill -9, {nats_down:g} s down"
        )
        return (
            f"{name}: {ours['runs']:.0f} runs, {what}: every run finished "
            f"{ours['seconds']:.1f} s after the fault (finished {ours['finished']:.0f}, failed "
            f"{ours['failed']:.0f}, not ended {ours['not_ended']:.0f}, attempts "
            f"{ours['attempts']:.0f}, steps repeated "
            f"{ours['steps_repeated']:.0f}, missing {ours['steps_missing']:.0f}) | no fault: "
            f"{base['seconds']:.1f} s | ratio {ours['seconds'] / base['seconds']:.2f}"
        )
    return (
        f"shutdown: {ours['requests']:.0f} queued, SIGTERM, grace {GRACE:g} s: ok "
        f"{ours['ok']:.0f} ({ours['ok_before_sigterm']:.0f} before SIGTERM), unavailable "
        f"{ours['unavailable']:.0f}, no reply {ours['no_reply']:.0f}, other "
        f"{ours['other']:.0f}, exit {ours['exit_seconds']:.1f} s after SIGTERM"
        f"{' (killed)' if ours['killed'] else ''} | drain baseline: ok {base['ok']:.0f}, "
        f"no reply {base['no_reply']:.0f}, exit {base['exit_seconds']:.1f} s"
        f"{' (killed)' if base['killed'] else ''}"
    )


async def main(only: list[str], quick: bool, as_json: bool) -> None:
    events_total, run_count, requests = (500, 5, 500) if quick else (2000, 10, 2000)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    no_fault: dict[str, float] | None = None
    for name in only:
        if name == "events":
            pair = await events(events_total, kill=True), await events(events_total, kill=False)
        elif name in ("runner", "nats"):
            no_fault = no_fault or await runs("none", run_count)
            pair = await runs(name, run_count), no_fault
        else:
            pair = await shutdown(requests, ours=True), await shutdown(requests, ours=False)
        figures[name] = {"agentbus": pair[0], "baseline": pair[1]}
        if not as_json:
            print(row(name, *pair), flush=True)
    if as_json:
        print(json.dumps(figures, indent=2))
    for folder in KEPT:
        print(f"kept {folder}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the load")
    parser.add_argument("--only", default="events,runner,nats,shutdown", help="scenarios")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--ack-wait", type=float, default=runner_ack_wait, help="the runner's lease, seconds"
    )
    parser.add_argument("--down", type=float, default=nats_down, help="nats-server down, s")
    parser.add_argument("--keep", action="store_true", help="keep the logs; print where")
    args = parser.parse_args()
    keep_files = args.keep
    runner_ack_wait = args.ack_wait
    nats_down = args.down
    asyncio.run(main(args.only.split(","), args.quick, args.json))
