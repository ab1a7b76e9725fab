"""Run once per idempotency key: the :class:`ExecutionLedger` in JetStream KV.

``agentbus_tool_runs``
    ledger key (caller + idempotency key) → the execution's state and its
    result or error. An execution is claimed with ``create`` (which fails if
    the key exists), so of two replicas retrying the same approved call exactly
    one runs it; later retries replay the stored result (``replayed=true``), or
    the stored error, and a retry while it still runs is a ``conflict``.

Not to be confused with the workflow runner's run store: this ledger only
remembers tool executions that carried an idempotency key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, JsonValue

from agentbus.framework import key_value
from agentbus.interfaces.catalog.tools import Completed
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.approvals import hashed_key
from agentbus.tool_executor.errors import ToolError, ToolFailed

RUNS_BUCKET = "agentbus_tool_runs"


class ExecutionRecord(BaseModel):
    """One idempotent execution: claimed, then done with its result or its error."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["running", "done"]
    arguments_digest: str
    result: Completed | None = None
    error: dict[str, JsonValue] | None = None


class ExecutionLedger:
    """Run-once bookkeeping keyed by caller and idempotency key."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> ExecutionLedger:
        return cls(await key_value(js, RUNS_BUCKET))

    @staticmethod
    def key(caller: str, idempotency_key: str) -> str:
        return hashed_key("run", caller, idempotency_key)

    async def claim(self, key: str, arguments_digest: str) -> ExecutionRecord | None:
        """``None`` when this caller now owns the execution; else the existing record."""
        record = ExecutionRecord(state="running", arguments_digest=arguments_digest)
        try:
            await self.kv.create(key, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                return await self.claim(key, arguments_digest)
            return ExecutionRecord.model_validate_json(entry.value or b"{}")
        return None

    async def finish(self, key: str, record: ExecutionRecord) -> None:
        await self.kv.put(key, record.model_dump_json().encode())

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
        try:
            result = await run()
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
            f"the call with idempotency key {idempotency_key!r} is still running; retry later",
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
