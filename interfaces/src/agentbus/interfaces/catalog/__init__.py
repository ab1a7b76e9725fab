"""The interfaces agentbus itself publishes, one module per domain.

:data:`REGISTRY` holds all of them; ``agentbus interfaces check`` compares it
with the schema files under ``interfaces/schemas/``.
"""

from agentbus.interfaces.catalog import model, system, tools
from agentbus.interfaces.registry import Registry

REGISTRY = Registry([*model.INTERFACES, *system.INTERFACES, *tools.INTERFACES])

__all__ = ["REGISTRY", "model", "system", "tools"]
