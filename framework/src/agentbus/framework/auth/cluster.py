"""The identities of one cluster file: who ``agentbus up`` and ``agentbus auth init`` admit.

One identity per service section (its grants derived from the class), one for the
operator (the person at the CLI, who may call every interface the cluster serves),
one for the MCP relay, and one for each version a service deploys (a maintainer's
component, its grants from the component's ``context.json``:
:meth:`Service.deployed_identities`).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from agentbus.framework.auth.grants import Grants, call_request
from agentbus.framework.auth.roles import OPERATOR, client_grants, operator_grants, service_grants
from agentbus.framework.auth.store import Identity
from agentbus.framework.errors import ConfigError
from agentbus.interfaces import subjects
from agentbus.interfaces.registry import Registry

if TYPE_CHECKING:
    from agentbus.framework.supervisor import ClusterFile

RELAY = "mcp"
"""`agentbus tools mcp`'s identity: lists and calls tools on behalf of a configured caller."""


def cluster_identities(cluster: ClusterFile, registry: Registry) -> list[Identity]:
    """The operator, the MCP relay, one identity per service and per deployed component.

    The operator may call every interface of ``registry`` and every request interface an
    identity of the cluster serves (a deployed component's own ones included)."""
    from agentbus.framework.runner import load_service  # runner imports the service base

    folder = str(cluster.path.resolve().parent)  # where `agentbus up` lets targets import from
    if folder not in sys.path:
        sys.path.insert(0, folder)
    identities: list[Identity] = []
    for section in cluster.service:
        cls = load_service(section.target)
        environment = {**os.environ, **section.env}
        grants = service_grants(cls, section.name, environment=environment)
        identities.append(Identity(section.name, "service", grants))
        for name, deployed in cls.deployed_identities(section.name, environment).items():
            identities.append(Identity(name, "deployed", deployed))
    operator = operator_grants(registry)
    for name, major in sorted({served for i in identities for served in served_requests(i.grants)}):
        operator |= call_request(name, major, OPERATOR)
    tools = tuple(registry.resolve(name) for name in ("tools.list", "tools.execute"))
    identities[:0] = [
        Identity(OPERATOR, "operator", operator),
        Identity(RELAY, "client", client_grants(RELAY, tools)),
    ]
    names = [identity.name for identity in identities]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"{cluster.path}: identities {', '.join(repeated)} are named twice (a service "
            f"section, `{OPERATOR}`, `{RELAY}` or a maintained component): rename the section"
        )
    return identities


_SERVED = re.compile(rf"^{re.escape(subjects.PREFIX)}\.(?P<name>.+)\.v(?P<major>\d+)\.\* \S+$")


def served_requests(grants: Grants) -> set[tuple[str, int]]:
    """``(interface name, major)`` of the request interfaces ``grants`` answer in a queue
    group (``grants.serve_request``)."""
    found = set()
    for entry in grants.subscribe:
        match = _SERVED.match(entry)
        if match and not entry.startswith(f"{subjects.EVENTS}."):
            found.add((match["name"], int(match["major"])))
    return found


__all__ = ["RELAY", "cluster_identities", "served_requests"]
