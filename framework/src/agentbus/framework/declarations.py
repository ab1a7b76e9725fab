"""How a service declares what it serves and consumes: ``@handles``, ``@streams``,
``@subscribes``, and the :class:`Declaration` records :meth:`Service.declarations` yields.

The decorators only mark methods (and check the interface kind at import time);
:class:`~agentbus.framework.service.Service` opens an endpoint or a subscription for
each mark when it starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from agentbus.framework.errors import ConfigError
from agentbus.interfaces.message import Interface, InterfaceKind

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    interface: Interface[Any, Any]
    name: str | None


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    interface: Interface[Any, Any]
    durable: str | None
    qualifier: str | None
    ack_wait: float
    concurrency: int


@dataclass(frozen=True, slots=True)
class Declaration:
    """One thing a service serves or consumes: the marker, its handler, the attribute name."""

    spec: EndpointSpec | SubscriptionSpec
    handler: Callable[..., Any]
    attribute: str


def handles(interface: Interface[Any, Any], *, name: str | None = None) -> Callable[[F], F]:
    """Mark a method as the handler of a request interface."""
    if interface.kind is not InterfaceKind.REQUEST:
        raise ConfigError(
            f"@handles needs a request interface; {interface.key} is {interface.kind}"
        )

    def mark(method: F) -> F:
        method.__agentbus_handles__ = EndpointSpec(interface, name)  # type: ignore[attr-defined]
        return method

    return mark


def streams(interface: Interface[Any, Any], *, name: str | None = None) -> Callable[[F], F]:
    """Mark an async generator method as the handler of a stream interface."""
    if interface.kind is not InterfaceKind.STREAM:
        raise ConfigError(f"@streams needs a stream interface; {interface.key} is {interface.kind}")

    def mark(method: F) -> F:
        if not inspect.isasyncgenfunction(method):
            raise ConfigError(
                f"@streams({interface.key}) needs an async generator method (async def with "
                f"yield); {getattr(method, '__qualname__', method)} is not one"
            )
        method.__agentbus_streams__ = EndpointSpec(interface, name)  # type: ignore[attr-defined]
        return method

    return mark


def subscribes(
    interface: Interface[Any, Any],
    *,
    durable: str | None = None,
    qualifier: str | None = None,
    ack_wait: float = 30.0,
    concurrency: int = 1,
) -> Callable[[F], F]:
    """Mark a method as a durable subscriber of an event interface."""
    if interface.kind is not InterfaceKind.EVENT:
        raise ConfigError(
            f"@subscribes needs an event interface; {interface.key} is {interface.kind}"
        )

    def mark(method: F) -> F:
        method.__agentbus_subscribes__ = SubscriptionSpec(  # type: ignore[attr-defined]
            interface, durable, qualifier, ack_wait, concurrency
        )
        return method

    return mark
