"""System events: what the bus says about itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentbus.interfaces.message import BusMessage, event_interface


class InterfaceChanged(BusMessage):
    """A new version of an interface was published."""

    interface: str = Field(description="Dotted interface name, e.g. model.language.generate.")
    old_version: str = Field(description="The version consumers use today.")
    new_version: str
    compatibility: Literal["none", "compatible", "breaking"]
    reasons: list[str] = Field(default_factory=list, description="One sentence per change.")
    component: str | None = Field(default=None, description="The component that provides it.")


INTERFACE_CHANGED = event_interface(
    "interface.changed",
    "1.0.0",
    payload=InterfaceChanged,
    description="Broadcast when an interface version is published, with the checker's verdict.",
)

INTERFACES = (INTERFACE_CHANGED,)
