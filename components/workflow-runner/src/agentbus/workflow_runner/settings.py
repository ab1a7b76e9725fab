"""The runner's own settings: ``AGENTBUS_RUNNER_*`` environment variables.

The framework's :class:`~agentbus.framework.Settings` say how to reach NATS; these say
how runs are taken, leased and executed.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RunnerSettings(BaseSettings):
    """How one runner replica takes and executes runs."""

    model_config = SettingsConfigDict(env_prefix="AGENTBUS_RUNNER_", extra="ignore", frozen=True)

    apps: str = Field(
        default="",
        description="Comma-separated `module:attribute` WorkflowApps to load (custom workflows "
        "and event routes); the presets are always there.",
    )
    max_runs: int = Field(default=32, gt=0, description="Runs one replica executes at once.")
    ack_wait: float = Field(
        default=30.0,
        ge=1.0,
        description="Seconds without a lease renewal before a run is given to another replica "
        "(after a crash). Leases are renewed every ack_wait / 3 while a run executes.",
    )
    max_deliver: int = Field(
        default=20, gt=0, description="Deliveries of one dispatch before the run fails."
    )
    tool_caller: str = Field(
        default="workflow-runner",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Default identity whose tool policy applies (a run's input may name another, "
        "if the tool executor lists workflow-runner as a relay).",
    )
    model_timeout: float = Field(default=120.0, gt=0, description="Seconds per model call/chunk.")
    tool_timeout: float = Field(default=330.0, gt=0, description="Seconds per tool call.")
    tool_attempt_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds one request of a tool call waits for its reply before it is sent "
        "again with the same idempotency key (until tool_timeout): a call whose executor died "
        "is noticed in seconds, one still running answers 'still running' and is waited for.",
    )
    step_retries: int = Field(
        default=4, ge=0, description="Retries of a step whose service is unavailable or timed out."
    )
    events_max_age: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Seconds run events are kept."
    )
    retention_seconds: float = Field(
        default=7 * 24 * 3600.0,
        ge=0,
        description="Seconds a run that ended (finished, failed, cancelled) is kept, with its "
        "steps, after it ended; 0 keeps runs forever. Unfinished runs are never removed.",
    )
    retention_sweep_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between two retention sweeps of one replica (the first runs at "
        "start).",
    )
