"""The maintainer: one agent per component that hears events, decides, changes and tests the
component on its old and new version, promotes or escalates.

Owns: the component's context (``context``), decisions (``rules``, ``decide``, ``audit``),
changes in git worktrees (``gitwork``, ``testmatrix``, ``flows``), making a change live
(``deployers``), escalations, the pipeline that runs an event through all of it
(``pipeline``, ``trail``, ``peers``) and the service on the bus (``service``). Must not
import another component: the gateway, the workflow runner and the deploy procedure are
reached over the bus or through the framework.
"""

from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.deployers import (
    BlueGreenDeployer,
    Deployed,
    Deployer,
    PointerDeployer,
    PromotionRejected,
)
from agentbus.maintainer.errors import ContextError, FlowError, MaintainerError
from agentbus.maintainer.pipeline import Pipeline
from agentbus.maintainer.rules import Decision, Facts, evaluate
from agentbus.maintainer.service import Maintainer

__all__ = [
    "BlueGreenDeployer",
    "ComponentContext",
    "ContextError",
    "Decision",
    "Deployed",
    "Deployer",
    "Facts",
    "FlowError",
    "Maintainer",
    "MaintainerError",
    "Pipeline",
    "PointerDeployer",
    "PromotionRejected",
    "evaluate",
]
