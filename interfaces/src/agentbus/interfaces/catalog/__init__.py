"""The interfaces agentbus itself publishes, one module per domain.

:data:`REGISTRY` holds all of them; ``agentbus interfaces check`` compares it
with the schema files under ``interfaces/schemas/``.
"""

from agentbus.interfaces.catalog import maintenance, model, system, tools, workflows
from agentbus.interfaces.registry import Registry

REGISTRY = Registry(
    [
        *maintenance.INTERFACES,
        *model.INTERFACES,
        *system.INTERFACES,
        *tools.INTERFACES,
        *workflows.INTERFACES,
    ]
)

__all__ = ["REGISTRY", "maintenance", "model", "system", "tools", "workflows"]
