"""What a maintainer may do on the bus, and what the versions it deploys may do.

A maintainer runs as ``maintainer-<component>``. Beyond the interfaces it declares
(``Maintainer.uses``), it consumes its two durable event consumers, writes only its own
component's escalations (``<component>.*`` in ``agentbus_escalations``) and deployments
key, publishes its decisions and escalation history, and probes the versions it deploys
(``$SRV`` and their direct subjects). What a deployed version may do comes from the
component's ``context.json`` (``interfaces.provides`` / ``consumes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agentbus.framework import AUDIT, DEPLOYMENTS_BUCKET, ESCALATIONS, EVENTS
from agentbus.framework.auth import Grants, context_grants, grants
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.catalog.maintenance import DEPENDENCY_UPDATED
from agentbus.interfaces.catalog.system import INTERFACE_CHANGED
from agentbus.interfaces.subjects import escalation_subject
from agentbus.maintainer.audit import decision_subject
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.errors import ContextError
from agentbus.maintainer.escalations import ESCALATIONS_BUCKET

COMPONENT_ENV = "AGENTBUS_MAINTAINER_COMPONENT"
"""The component folder, for ``agentbus up`` cluster files (``env = {...}``)."""
PREFIX = "maintainer-"


def durable(name: str, interface_name: str) -> str:
    """The durable consumer of maintainer ``name`` for the event ``interface_name``."""
    return f"{name}__{interface_name.replace('.', '_')}"


def component_of(environment: Mapping[str, str]) -> ComponentContext | None:
    """The component ``environment`` names (``AGENTBUS_MAINTAINER_COMPONENT``), if readable."""
    folder = environment.get(COMPONENT_ENV)
    if not folder:
        return None
    try:
        return ComponentContext.load(Path(folder))
    except ContextError:
        return None  # the maintainer itself refuses to start, saying why


def deployed_service(component: ComponentContext) -> str | None:
    """The service name the component's versions run as, when they are deployed blue/green."""
    config = component.config
    if config.get("deploy_strategy") != "blue-green" or "service" not in config:
        return None
    return str(config["service"].get("name") or component.name)


def maintainer_grants(name: str, environment: Mapping[str, str]) -> Grants:
    """The grants of maintainer ``name`` (``maintainer-<component>``) beyond its interfaces."""
    context = component_of(environment)
    component = context.name if context is not None else name.removeprefix(PREFIX)
    needs = (
        grants.consume(EVENTS.name, durable(name, INTERFACE_CHANGED.name))
        | grants.consume(EVENTS.name, durable(name, DEPENDENCY_UPDATED.name))
        | grants.write_bucket(ESCALATIONS_BUCKET, keys=[f"{component}.*"])
        | grants.create_stream(ESCALATIONS.name)
        | grants.write_bucket(DEPLOYMENTS_BUCKET, keys=[component])
        | grants.publish(escalation_subject(component), decision_subject(component))
        | grants.read_stream(AUDIT.name)
        | grants.discover()
    )
    if context is not None and deployed_service(context) is not None:
        for interface in context.context["interfaces"]["provides"]:
            major = int(str(interface["version"]).split(".", 1)[0])
            needs |= grants.call_request(str(interface["name"]), major, name)
    return needs


def deployed_grants(environment: Mapping[str, str]) -> dict[str, Grants]:
    """The identity of the versions the maintainer of ``environment``'s component deploys."""
    context = component_of(environment)
    service = deployed_service(context) if context is not None else None
    if context is None or service is None:
        return {}
    return {service: context_grants(service, context.context, REGISTRY)}


__all__ = [
    "COMPONENT_ENV",
    "component_of",
    "deployed_grants",
    "deployed_service",
    "durable",
    "maintainer_grants",
]
