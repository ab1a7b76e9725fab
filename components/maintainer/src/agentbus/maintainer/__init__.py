"""The maintainer: one agent per component that hears events, decides, changes and tests the
component on its old and new version, promotes or escalates.

Owns: the component's context (``context``), decisions (``rules``, ``decide``, ``audit``),
changes in git worktrees (``gitwork``, ``testmatrix``, ``flows``), promotion (``promote``)
and escalations. Must not import another component: the gateway, the workflow runner and
the deploy procedure are reached over the bus or through the framework.
"""

from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import ContextError, FlowError, MaintainerError
from agentbus.maintainer.promote import BlueGreenPromoter, KVPromoter, Promoter, PromotionRejected
from agentbus.maintainer.rules import Decision, Facts, evaluate
from agentbus.maintainer.service import Maintainer

__all__ = [
    "BlueGreenPromoter",
    "ComponentContext",
    "ContextError",
    "Decision",
    "Facts",
    "FlowError",
    "KVPromoter",
    "Maintainer",
    "MaintainerError",
    "Promoter",
    "PromotionRejected",
    "evaluate",
]
