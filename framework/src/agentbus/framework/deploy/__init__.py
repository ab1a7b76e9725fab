"""Blue/green deployment of queue-group services.

Owns: the deployments KV record (``state``), how an instance joins and leaves
production intake (``roles``), how a version is started and stopped
(``backends``: processes, containers, and the factory), talking to instances
(``probe``) and the promotion / rollback procedure (``promote``). Must not know
any component: it deploys a ``module:Class`` at a commit.

This package exports only what every service process needs (the record and the
role); a deployer imports ``agentbus.framework.deploy.promote`` and
``agentbus.framework.deploy.backends``, so a service never loads the promoter, the
probe or the Docker SDK.
"""

from agentbus.framework.deploy.roles import DeployRole
from agentbus.framework.deploy.state import (
    Color,
    DeployedVersion,
    DeploymentRecord,
    DeploymentStore,
    Versioned,
)

__all__ = [
    "Color",
    "DeployRole",
    "DeployedVersion",
    "DeploymentRecord",
    "DeploymentStore",
    "Versioned",
]
