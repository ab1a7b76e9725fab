"""The services that bench/faults.py starts as child processes and then kills.

Each leaves its trace in a file named by an environment variable, written with one
``write`` per line on a file opened ``O_APPEND``: what a process wrote before a kill -9 is
in the kernel already, so the file is the truth about what ran.

- :class:`Recorder` (``FAULTS_EVENTS_FILE``): a durable subscriber of ``bench.faults.tick``
  that appends each event's number; its consumer's ack wait is ``FAULTS_ACK_WAIT`` seconds.
- :data:`app` (``FAULTS_STEPS_FILE``): the ``faults.hold`` workflow, ``steps`` durable
  steps of ``seconds`` each, no model or tool; each step appends ``<run id> <index>`` once
  it has slept, so a step that ran twice shows twice.
- :class:`Slow` and :func:`serve_raw_slow`: a request handler that sleeps
  ``FAULTS_WORK`` seconds, as an agentbus service and as a plain nats-py queue subscription
  that drains on SIGTERM (what the framework did before issue 14).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import nats
from nats.aio.msg import Msg
from pydantic import BaseModel, Field

from agentbus.framework import MessageContext, Service, handles, subscribes
from agentbus.interfaces import BusMessage, event_interface, request_interface
from agentbus.workflow_runner import RunContext, WorkflowApp, step

RAW_SUBJECT = "bench.faults.raw"
RAW_SLOTS = 4


class Tick(BusMessage):
    n: int


TICK = event_interface("bench.faults.tick", "1.0.0", payload=Tick)
DURABLE = "faults-recorder"


class Work(BusMessage):
    n: int


class Done(BusMessage):
    n: int


WORK = request_interface("bench.faults.work", "1.0.0", request=Work, reply=Done)


def append_line(variable: str, line: str) -> None:
    """Append ``line`` to the file named by environment ``variable``, in one write."""
    fd = os.open(os.environ[variable], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Recorder(Service):
    """Appends the number of every ``bench.faults.tick`` it handles."""

    name = "faults-recorder"
    version = "1.0.0"

    @subscribes(
        TICK,
        durable=DURABLE,
        ack_wait=float(os.environ.get("FAULTS_ACK_WAIT", "30")),
        concurrency=4,
    )
    async def on_tick(self, event: Tick, ctx: MessageContext) -> None:
        append_line("FAULTS_EVENTS_FILE", str(event.n))


class Slow(Service):
    """Answers ``bench.faults.work`` after ``FAULTS_WORK`` seconds."""

    name = "faults-slow"
    version = "1.0.0"

    @handles(WORK)
    async def work(self, request: Work, ctx: MessageContext) -> Done:
        await asyncio.sleep(float(os.environ.get("FAULTS_WORK", "0.05")))
        return Done(n=request.n)


async def serve_raw_slow(url: str, seed: str) -> None:
    """The baseline of :class:`Slow`: a nats-py queue subscription whose callback waits
    for one of 4 slots, and on SIGTERM ``drain()``, which waits until every message already
    received has had a slot, however many, before the grace for the running ones starts."""
    connection = await nats.connect(url, nkeys_seed=seed)
    slots = asyncio.Semaphore(RAW_SLOTS)
    work = float(os.environ.get("FAULTS_WORK", "0.05"))

    running: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        try:
            await asyncio.sleep(work)
            await connection.publish(msg.reply, msg.data)
        finally:
            slots.release()

    async def respond(msg: Msg) -> None:  # nats-py awaits one callback at a time
        await slots.acquire()
        task = asyncio.get_running_loop().create_task(handle(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    subscription = await connection.subscribe(
        RAW_SUBJECT, queue="q", cb=respond, pending_msgs_limit=-1, pending_bytes_limit=-1
    )
    await connection.flush()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await subscription.drain()  # type: ignore[no-untyped-call]  # waits for every message
    if running:
        await asyncio.wait(running, timeout=float(os.environ["AGENTBUS_SHUTDOWN_GRACE"]))
    await connection.close()


app = WorkflowApp("faults")


class HoldInput(BaseModel):
    steps: int = Field(default=4, ge=1, le=100)
    seconds: float = Field(default=1.0, ge=0, le=60)


@step
async def pause(run_id: str, index: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    append_line("FAULTS_STEPS_FILE", f"{run_id} {index}")
    return index


@app.workflow("faults.hold", input=HoldInput)
async def hold(run: RunContext, data: HoldInput) -> dict[str, int]:
    """``steps`` durable pauses in a row: a run resumed elsewhere replays the recorded ones
    and runs the rest."""
    for index in range(data.steps):
        await pause(run.run_id, index, data.seconds)
    return {"steps": data.steps}


if __name__ == "__main__":  # the baseline server: python faults_services.py URL SEED_FILE
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_raw_slow(sys.argv[1], sys.argv[2]))
