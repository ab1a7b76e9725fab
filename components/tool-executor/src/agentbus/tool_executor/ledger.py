"""Run once per idempotency key: the :class:`ExecutionLedger` in JetStream KV.

``agentbus_tool_runs``
    ledger key (caller + idempotency key) → the execution's state and its
    result or error. An execution is claimed with ``create`` (which fails if
    the key exists), so of two replicas retrying the same approved call exactly
    one runs it; later retries replay the stored result (``replayed=true``), or
    the stored error, and a retry while it still runs is a ``conflict``.

A claim names its owner (the executor instance) and holds a lease
(:data:`LEASE_SECONDS`, wall clock, renewed every :data:`RENEW_EVERY` while the
tool runs). An executor that dies mid-call stops renewing: the next retry of
the key takes the claim over (compare-and-set on the entry's revision, so of
two retries one wins) and runs the tool again. So a tool whose executor dies
mid-call may run twice, never zero times, and a key is never stuck "running".
The outcome is stored with retries through a short bus outage.

Not to be confused with the workflow runner's run store: this ledger only
remembers tool executions that carried an idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from agentbus.framework import key_value
from agentbus.interfaces.catalog.tools import Completed
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.approvals import hashed_key
from agentbus.tool_executor.errors import ToolError, ToolFailed

RUNS_BUCKET = "agentbus_tool_runs"
LEASE_SECONDS = 15.0
"""How long a claim holds without renewal: a retry after that takes it over."""
RENEW_EVERY = 5.0
FINISH_PATIENCE = 30.0
"""How long storing an outcome is retried through a bus outage."""

log = logging.getLogger(__name__)


class ExecutionRecord(BaseModel):
    """One idempotent execution: claimed, then done with its result or its error."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "done"]
    arguments_digest: str
    result: Completed | None = None
    error: dict[str, JsonValue] | None = None
    owner: str | None = None
    """The executor instance running it (``running`` only)."""
    lease_until: float | None = None
    """Wall-clock time after which a retry may take a ``running`` claim over."""

    def lapsed(self, now: float) -> bool:
        return self.state == "running" and (self.lease_until or 0.0) < now


class ExecutionLedger:
    """Run-once bookkeeping keyed by caller and idempotency key."""

    def __init__(self, kv: KeyValue, owner: str = "", *, lease: float = LEASE_SECONDS) -> None:
        self.kv = kv
        self.owner = owner
        self.lease = lease
        self._revisions: dict[str, int] = {}
        """The revision of each claim this ledger holds, for renewals by compare-and-set."""

    @classmethod
    async def open(cls, js: JetStreamContext, owner: str = "") -> ExecutionLedger:
        return cls(await key_value(js, RUNS_BUCKET), owner)

    @staticmethod
    def key(caller: str, idempotency_key: str) -> str:
        return hashed_key("run", caller, idempotency_key)

    def _running(self, arguments_digest: str) -> bytes:
        record = ExecutionRecord(
            state="running",
            arguments_digest=arguments_digest,
            owner=self.owner,
            lease_until=time.time() + self.lease,
        )
        return record.model_dump_json().encode()

    async def claim(self, key: str, arguments_digest: str) -> ExecutionRecord | None:
        """``None`` when this caller now owns the execution; else the existing record.

        A ``running`` record whose lease lapsed (its executor died) is taken over when its
        arguments match; of two retries racing for it, the compare-and-set lets one win."""
        for _ in range(8):
            with contextlib.suppress(KeyWrongLastSequenceError):  # it exists: look at it
                self._revisions[key] = await self.kv.create(key, self._running(arguments_digest))
                return None
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                continue  # deleted meanwhile: create again
            existing = ExecutionRecord.model_validate_json(entry.value or b"{}")
            if existing.arguments_digest != arguments_digest or not existing.lapsed(time.time()):
                return existing
            try:
                self._revisions[key] = await self.kv.update(
                    key, self._running(arguments_digest), last=entry.revision
                )
            except KeyWrongLastSequenceError:
                continue  # another retry took it (or its owner renewed): look again
            log.warning(
                "took over the tool call of %s: its owner %s stopped renewing its lease; the "
                "tool runs again",
                key,
                existing.owner or "(unknown)",
            )
            return None
        raise ToolFailed(
            "the idempotency key's record kept changing under this call; retry",
            code=ErrorCode.CONFLICT,
        )

    async def _renew(self, key: str, arguments_digest: str) -> None:
        """Hold the lease while the tool runs (every :data:`RENEW_EVERY` s, or a third of a
        shorter lease), by compare-and-set: a claim another executor took over (this one
        was cut off longer than the lease) is left to it. A failed renewal is tried again
        at the next tick."""
        every = min(RENEW_EVERY, self.lease / 3)
        while key in self._revisions:
            await asyncio.sleep(every)
            try:
                self._revisions[key] = await self.kv.update(
                    key, self._running(arguments_digest), last=self._revisions[key]
                )
            except KeyWrongLastSequenceError:
                if not await self._still_ours(key):
                    log.warning(
                        "the claim of %s was taken over: this run's outcome still lands", key
                    )
                    return
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("could not renew the lease of %s: %s", key, exc)

    async def _still_ours(self, key: str) -> bool:
        """After a refused renewal: whether the claim is still this executor's (a renewal
        that timed out in an outage may have landed after all, moving the revision); if so,
        its revision is adopted."""
        with contextlib.suppress(TimeoutError, nats.errors.Error, ValidationError):
            entry = await self.kv.get(key)
            record = ExecutionRecord.model_validate_json(entry.value or b"{}")
            if record.state == "running" and record.owner == self.owner and self.owner:
                self._revisions[key] = int(entry.revision or 0)
                return True
        return False

    async def finish(self, key: str, record: ExecutionRecord) -> None:
        """Store the outcome, retried through a bus outage of up to :data:`FINISH_PATIENCE`."""
        deadline = time.monotonic() + FINISH_PATIENCE
        delay = 0.25
        while True:
            try:
                await self.kv.put(key, record.model_dump_json().encode())
                return
            except (TimeoutError, nats.errors.Error):
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)

    async def run_once(
        self,
        caller: str,
        idempotency_key: str,
        arguments_digest: str,
        run: Callable[[], Awaitable[Completed]],
    ) -> Completed:
        """``run()`` if this key was never claimed, else replay what the first run left."""
        key = self.key(caller, idempotency_key)
        existing = await self.claim(key, arguments_digest)
        if existing is not None:
            return replay(existing, idempotency_key, arguments_digest)
        renewing = asyncio.ensure_future(self._renew(key, arguments_digest))
        try:
            try:
                result = await run()
            finally:  # no renewal may land after the outcome
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                self._revisions.pop(key, None)
        except ToolError as exc:
            error: dict[str, JsonValue] = {"code": str(exc.code), "message": exc.message}
            await self.finish(key, self._done(arguments_digest, error=error))
            raise
        except BaseException:
            internal: dict[str, JsonValue] = {
                "code": "internal",
                "message": "the run failed; see the service log",
            }
            await self.finish(key, self._done(arguments_digest, error=internal))
            raise
        await self.finish(key, self._done(arguments_digest, result=result))
        return result

    @staticmethod
    def _done(
        arguments_digest: str,
        *,
        result: Completed | None = None,
        error: dict[str, JsonValue] | None = None,
    ) -> ExecutionRecord:
        return ExecutionRecord(
            state="done", arguments_digest=arguments_digest, result=result, error=error
        )


def replay(existing: ExecutionRecord, idempotency_key: str, arguments_digest: str) -> Completed:
    """The stored result (marked replayed), or raise the stored error or a conflict."""
    if existing.arguments_digest != arguments_digest:
        raise ToolFailed(
            f"idempotency key {idempotency_key!r} was used for a different call; use a new key",
            code=ErrorCode.CONFLICT,
        )
    if existing.state == "running":
        raise ToolFailed(
            f"the call with idempotency key {idempotency_key!r} is still running (its executor "
            f"renews a {LEASE_SECONDS:.0f} s lease; if it died, a retry after that runs it "
            "again); retry later",
            code=ErrorCode.CONFLICT,
        )
    if existing.error is not None:
        raise ToolError(
            str(existing.error.get("message", "")),
            code=str(existing.error.get("code", "invalid")),
            replayed=True,
        )
    assert existing.result is not None
    return existing.result.model_copy(update={"replayed": True})
