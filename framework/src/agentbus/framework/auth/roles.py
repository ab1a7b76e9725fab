"""The grants of each kind of identity, derived from what the code declares.

A service's grants come from its class: the interfaces its ``@handles``/``@streams``
methods serve, the events its ``@subscribes`` methods consume, the interfaces it
declares it calls (``Service.uses``) and publishes (``Service.emits``), the framework's
own needs (streams and buckets every service declares, its config key, dead letters)
and :meth:`Service.extra_grants` for subjects that are not interfaces. A new endpoint
or subscription is granted by being written; a call that was not declared is refused
by the service's own bus before the server refuses it (``Bus`` checks ``uses``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentbus.framework.auth import grants as g
from agentbus.framework.auth.grants import Grants
from agentbus.framework.declarations import EndpointSpec, SubscriptionSpec
from agentbus.framework.errors import ConfigError
from agentbus.framework.jetstream import (
    CONFIG_BUCKET,
    DEPLOYMENTS_BUCKET,
    EVENTS,
    KV_BUCKETS,
    STREAMS,
)
from agentbus.interfaces import subjects
from agentbus.interfaces.message import Interface, InterfaceKind
from agentbus.interfaces.registry import Registry

if TYPE_CHECKING:
    from agentbus.framework.service import Service

OPERATOR = "operator"
"""The person at the CLI: decides approvals and escalations, deploys, configures."""
ADMIN = "admin"
"""Every subject: the test harness's identity (``agentbus auth init`` never makes one)."""

_MARKERS = ("__agentbus_handles__", "__agentbus_streams__", "__agentbus_subscribes__")


def declared(cls: type[Service]) -> list[tuple[str, EndpointSpec | SubscriptionSpec]]:
    """``(attribute, spec)`` of every ``@handles``, ``@streams`` and ``@subscribes`` method."""
    found: list[tuple[str, EndpointSpec | SubscriptionSpec]] = []
    for attribute in dir(cls):
        method = getattr(cls, attribute, None)
        for marker in _MARKERS:
            spec = getattr(method, marker, None)
            if spec is not None:
                found.append((attribute, spec))
    return found


def framework_needs(name: str) -> Grants:
    """What every service does through the framework, whatever it serves."""
    needs = g.connection(name) | g.discoverable(name)
    for spec in STREAMS:
        needs |= g.create_stream(spec.name)
    for bucket in KV_BUCKETS:
        needs |= g.read_bucket(bucket) | g.create_stream(g.kv_stream(bucket))
    return needs | g.publish(
        f"{subjects.DEAD_LETTER}.{name}.>",  # events that kept failing
        f"{subjects.DEAD_LETTER}.malformed",  # undecodable deliveries (nats_guard)
        # `agentbus health --check` with the service's own key (a container's healthcheck)
        # pings it; a PING answer names a service and an instance, nothing more.
        "$SRV.PING",
        f"$SRV.PING.{name}",
        f"$SRV.PING.{name}.*",
    )


def service_grants(
    cls: type[Service],
    name: str,
    queue_group: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> Grants:
    """The grants of service ``cls`` running as identity ``name`` with ``environment``
    (default: this process's)."""
    queue = queue_group or name
    grants = framework_needs(name)
    for attribute, spec in declared(cls):
        if isinstance(spec, EndpointSpec):
            grants |= g.serve(spec.interface, queue)
        else:
            durable = spec.durable or f"{queue}__{attribute}"
            grants |= g.consume(EVENTS.name, durable)
    for interface in cls.uses:
        grants |= g.call(interface, name)
    for interface in cls.emits:
        grants |= g.emit(interface)
    return grants | cls.extra_grants(name, os.environ if environment is None else environment)


def context_grants(name: str, context: Mapping[str, Any], registry: Registry) -> Grants:
    """The grants of a component deployed as identity ``name``, from its ``context.json``
    (``interfaces.provides`` / ``consumes``): serve what it provides (publish it, if an
    event), call what it consumes. Names not in ``registry`` are request interfaces (the
    component defines them); consumed events are not granted (their durable consumers are
    named after the code, which this does not read)."""
    known = {(i.name, i.version.major): i for i in registry}
    interfaces = context.get("interfaces") or {}
    grants = framework_needs(name)
    for role in ("provides", "consumes"):
        for entry in interfaces.get(role) or ():
            interface_name = str(entry.get("name", ""))
            if not _INTERFACE_NAME.fullmatch(interface_name):  # never a wildcard in a grant
                raise ConfigError(
                    f"{name}: context.json names the interface {interface_name!r}; interface "
                    "names are dotted lower-case words (model.catalog)"
                )
            major = _major(str(entry.get("version", "1")))
            interface = known.get((interface_name, major))
            if interface is not None and interface.kind is InterfaceKind.EVENT:
                grants |= g.emit(interface) if role == "provides" else Grants()
            elif role == "provides":
                grants |= g.serve_request(interface_name, major, name)
            else:
                grants |= g.call_request(interface_name, major, name)
    return grants


_INTERFACE_NAME = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+")


def _major(version: str) -> int:
    """The major of ``1.2.0``, or of a range's lower bound (``>=1.0.0,<2.0.0``)."""
    digits = version.lstrip(">=<~^ ").split(".", 1)[0]
    return int(digits) if digits.isdigit() else 1


def operator_grants(registry: Registry, name: str = OPERATOR) -> Grants:
    """The operator: calls every interface as itself, watches every subject, decides
    escalations (``agentbus.escalations.>``), administers JetStream and KV, publishes
    events (``agentbus bus publish``); serves nothing, so it cannot pose as a service."""
    grants = g.connection(name) | g.discover() | g.administer_jetstream()
    for interface in registry:
        if interface.kind is not InterfaceKind.EVENT:
            grants |= g.call(interface, name)
    return grants | g.Grants.of(
        publish=[
            f"{subjects.EVENTS}.>",  # any event, also an application's (`agentbus publish`)
            f"{subjects.ESCALATIONS}.>",
            f"{subjects.WORKFLOWS}.>",
            f"{subjects.RUNS}.>",
        ],
        subscribe=[
            f"{subjects.EVENTS}.>",
            f"{subjects.RUNS}.>",
            f"{subjects.AUDIT}.>",
            f"{subjects.ESCALATIONS}.>",
            f"{subjects.DEAD_LETTER}.>",
        ],
    )


def client_grants(name: str, uses: tuple[Interface[Any, Any], ...]) -> Grants:
    """A plain client (an example's script, the MCP relay): calls ``uses`` as ``name``."""
    grants = g.connection(name) | g.discover()
    for interface in uses:
        grants |= g.call(interface, name)
    return grants


def admin_grants() -> Grants:
    return g.everything()


__all__ = [
    "ADMIN",
    "CONFIG_BUCKET",
    "DEPLOYMENTS_BUCKET",
    "OPERATOR",
    "admin_grants",
    "client_grants",
    "context_grants",
    "declared",
    "framework_needs",
    "operator_grants",
    "service_grants",
]
