"""The work queue of runs: any runner replica may take one; a crashed replica's runs come back.

A dispatch is a small message (the run id) on ``agentbus.workflows.dispatch`` in the
WorkQueue stream ``AGENTBUS_RUNS_QUEUE``. Replicas share one durable pull consumer
(``workflow-runner``) and fetch only as many runs as they have free slots. A replica
holds a run's message for the whole time it executes the run, renewing the lease
(``in_progress``) every ``ack_wait / 3``; it acknowledges when the run ends or parks
for approval. If the replica dies, JetStream redelivers the message after
``ack_wait`` to another replica, which continues from the run's persisted steps.

Dispatches are de-duplicated by ``Nats-Msg-Id = <run id>:<generation>``: a resume
request and an approval event that race re-dispatch the run once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy
from nats.js.errors import BadRequestError

from agentbus.framework import DAY, StreamSpec, declare_stream
from agentbus.interfaces.message import BusMessage
from agentbus.interfaces.metadata import MSG_ID
from agentbus.interfaces.subjects import runs_wildcard, workflow_dispatch_subject

log = logging.getLogger("agentbus.workflow_runner.dispatch")

QUEUE = StreamSpec(
    "AGENTBUS_RUNS_QUEUE",
    (workflow_dispatch_subject(),),
    "Workflow runs waiting for a runner replica",
    max_age=30 * DAY,
    retention=RetentionPolicy.WORK_QUEUE,
)
CONSUMER = "workflow-runner"
FETCH_WAIT = 1.0
"""Seconds one pull request waits on the server; a replica that stops leaves at most this
long a request that could still take a run (which then comes back after ack_wait)."""


EVENTS_STREAM = "AGENTBUS_RUNS"


def events_stream(max_age: float) -> StreamSpec:
    """The stream keeping run events (``agentbus.runs.>``) for ``max_age`` seconds."""
    return StreamSpec(
        EVENTS_STREAM, (runs_wildcard(),), "Progress events of workflow runs", max_age=max_age
    )


class Dispatch(BusMessage):
    run_id: str
    generation: int = 0


async def declare(
    js: JetStreamContext, storage: Literal["file", "memory"], events_max_age: float
) -> None:
    await declare_stream(js, QUEUE, storage)
    await declare_stream(js, events_stream(events_max_age), storage)


async def dispatch(js: JetStreamContext, run_id: str, generation: int) -> None:
    """Queue a run for any replica (once per run and generation)."""
    body = Dispatch(run_id=run_id, generation=generation).model_dump_json().encode()
    await js.publish(
        workflow_dispatch_subject(),
        body,
        headers={MSG_ID: f"{run_id}:{generation}"},
        stream=QUEUE.name,
    )


RunHandler = Callable[[Msg, Dispatch], Awaitable[None]]
"""Executes one dispatched run; acknowledges (or not) the message itself."""


class WorkQueue:
    """One replica's intake: fetch runs while slots are free, hand each to ``handler``."""

    def __init__(
        self,
        js: JetStreamContext,
        handler: RunHandler,
        *,
        max_runs: int,
        ack_wait: float,
    ) -> None:
        self._js = js
        self._handler = handler
        self._ack_wait = ack_wait
        self._free = asyncio.Semaphore(max_runs)
        self._loop_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=-1,
            max_deliver=-1,
        )
        with contextlib.suppress(BadRequestError):  # exists with other settings: keep it
            await self._js.add_consumer(QUEUE.name, config)
        self._sub = await self._js.pull_subscribe_bind(durable=CONSUMER, stream=QUEUE.name)
        self._loop_task = asyncio.get_running_loop().create_task(self._intake())

    async def stop_intake(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()

    async def _intake(self) -> None:
        # One run per fetch: a batch fetch keeps the messages it has until the batch is full
        # or the fetch expires, and a run waiting there has no lease renewal (nor progress).
        while True:
            await self._free.acquire()
            try:
                [msg] = await self._sub.fetch(batch=1, timeout=FETCH_WAIT)
            except (TimeoutError, nats.errors.TimeoutError):
                self._free.release()
                continue
            except asyncio.CancelledError:
                self._free.release()
                raise
            except Exception as exc:  # disconnected, server restarting: try again shortly
                self._free.release()
                log.warning("fetching runs failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            task = asyncio.get_running_loop().create_task(self._take(msg))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _take(self, msg: Msg) -> None:
        try:
            try:
                order = Dispatch.model_validate_json(msg.data)
            except ValueError:
                log.error("dropped an undecodable dispatch: %r", msg.data[:200])
                await msg.term()
                return
            await self._handler(msg, order)
        except Exception:  # the run stays as recorded; its message comes back after ack_wait
            log.exception("taking run message %s failed", msg.metadata.sequence.stream)
        finally:
            self._free.release()


async def keep_alive(msg: Msg, ack_wait: float) -> None:
    """Renew a run's lease until cancelled."""
    while True:
        await asyncio.sleep(ack_wait / 3)
        with contextlib.suppress(Exception):  # reconnecting: the next renewal will do
            await msg.in_progress()
