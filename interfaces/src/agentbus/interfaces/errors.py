"""Errors raised by ``agentbus.interfaces``.

::

    InterfaceError                       root of this package
    ├── VersionError (ValueError)        a version string is not MAJOR.MINOR.PATCH
    ├── UnknownInterfaceError (LookupError)
    │                                    no interface of that name / version is registered
    └── RegistryError (ValueError)       two declarations clash, or published schemas are unreadable
"""

from __future__ import annotations


class InterfaceError(Exception):
    """Root of every error raised by ``agentbus.interfaces``."""


class VersionError(InterfaceError, ValueError):
    """A version string is not semantic (``MAJOR.MINOR.PATCH``)."""


class UnknownInterfaceError(InterfaceError, LookupError):
    """No interface with that name (or version) is registered."""


class RegistryError(InterfaceError, ValueError):
    """A registry declaration clashes with another, or a schema file is unusable."""
