"""Versioned bus messages: models, subjects, header metadata, registry, compatibility.

This package depends on nothing of agentbus; everything else depends on it.
"""

from agentbus.interfaces.compat import Compatibility, CompatibilityReport, Finding, compare_schemas
from agentbus.interfaces.error_reply import ErrorCode, ErrorReply
from agentbus.interfaces.errors import (
    InterfaceError,
    RegistryError,
    UnknownInterfaceError,
    VersionError,
)
from agentbus.interfaces.message import (
    BusMessage,
    Interface,
    InterfaceKind,
    event_interface,
    request_interface,
    stream_interface,
)
from agentbus.interfaces.metadata import Metadata, Source, TraceContext, new_id
from agentbus.interfaces.registry import Registry, check_registry, export_schemas
from agentbus.interfaces.semver import Version

__all__ = [
    "BusMessage",
    "Compatibility",
    "CompatibilityReport",
    "ErrorCode",
    "ErrorReply",
    "Finding",
    "Interface",
    "InterfaceError",
    "InterfaceKind",
    "Metadata",
    "Registry",
    "RegistryError",
    "Source",
    "TraceContext",
    "UnknownInterfaceError",
    "Version",
    "VersionError",
    "check_registry",
    "compare_schemas",
    "event_interface",
    "export_schemas",
    "new_id",
    "request_interface",
    "stream_interface",
]
