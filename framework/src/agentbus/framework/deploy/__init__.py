"""Blue/green deployment of queue-group services.

Owns: the deployments KV record (``state``), how an instance joins and leaves
production intake (``roles``), how a version is started and stopped
(``backend``), talking to instances (``probe``) and the promotion / rollback
procedure (``promote``). Must not
know any component: it deploys a ``module:Class`` at a commit.
"""

from agentbus.framework.deploy.backend import Backend, LocalBackend, Release, Running
from agentbus.framework.deploy.probe import Counts, Probe, SmokeRequest
from agentbus.framework.deploy.promote import (
    Outcome,
    Policy,
    Promoter,
    PromotionResult,
    promote,
    rollback,
)
from agentbus.framework.deploy.roles import DeployRole
from agentbus.framework.deploy.state import (
    Color,
    DeploymentRecord,
    DeploymentStore,
    Slot,
    Versioned,
)

__all__ = [
    "Backend",
    "Color",
    "Counts",
    "DeployRole",
    "DeploymentRecord",
    "DeploymentStore",
    "LocalBackend",
    "Outcome",
    "Policy",
    "Probe",
    "Promoter",
    "PromotionResult",
    "Release",
    "Running",
    "Slot",
    "SmokeRequest",
    "Versioned",
    "promote",
    "rollback",
]
