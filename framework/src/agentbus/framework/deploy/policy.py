"""What a promotion may take (timeouts, the bake window, the regression threshold) and how
it ended: :class:`PromotionPolicy`, :class:`Outcome`, :class:`PromotionResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from agentbus.framework.deploy.probe import Counts
from agentbus.framework.deploy.state import DeploymentRecord


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """Timeouts, the bake window and the regression threshold."""

    health_timeout: float = 30.0
    switch_timeout: float = 15.0
    """Seconds for instances to confirm a join or a leave."""
    bake_seconds: float = 60.0
    check_interval: float = 1.0
    max_error_rate_increase: float = 0.05
    """Regression: the new error rate exceeds the baseline by more than this (0.05 = 5 points)."""
    min_requests: int = 20
    """The new version's requests needed before its error rate is judged."""
    stop_grace: float = 10.0


class Outcome(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    """Failed health, contract or smoke (or lost the compare-and-set): never served."""
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    """Someone else changed the record during the bake window; we stopped watching."""


@dataclass(frozen=True, slots=True)
class PromotionResult:
    outcome: Outcome
    component: str
    version: str
    commit: str
    reason: str = ""
    record: DeploymentRecord | None = None
    baseline: Counts = field(default_factory=Counts)
    observed: Counts = field(default_factory=Counts)
