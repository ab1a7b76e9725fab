"""Run events on ``agentbus.runs.<run_id>.events``, stored by the stream ``AGENTBUS_RUNS``.

Events are published with a plain (core) publish on a subject the stream captures:
the stream keeps them for ``--follow`` and late readers, and the run does not wait
for an acknowledgement per event. They report progress; the truth about a run is
its KV record (``workflows.get``).
"""

from __future__ import annotations

import logging

from agentbus.framework import Bus, to_json
from agentbus.interfaces.catalog.workflows import RUN_EVENT, RunEvent, RunEventBody
from agentbus.interfaces.subjects import run_events_subject
from agentbus.workflow_runner.store import now

log = logging.getLogger("agentbus.workflow_runner.events")


class RunEvents:
    """Publishes the events of every run one replica executes."""

    def __init__(self, bus: Bus, replica: str) -> None:
        self._bus = bus
        self._replica = replica

    async def emit(self, run_id: str, body: RunEventBody) -> None:
        event = RunEvent(run_id=run_id, at=now(), replica=self._replica, event=body)
        headers = self._bus.metadata(RUN_EVENT).to_headers()
        try:
            await self._bus.publish_raw(run_events_subject(run_id), to_json(event), headers=headers)
        except Exception:  # progress reports must not fail a run; the KV record is the truth
            log.warning("could not publish a %s event of run %s", body.kind, run_id, exc_info=True)
