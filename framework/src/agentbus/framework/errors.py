"""Errors raised by ``agentbus.framework``.

::

    FrameworkError                          root of this package
    ├── ConfigError (ValueError)            misuse: bad settings, bad cluster file, bad declaration
    ├── BusError (RuntimeError)             runtime failures talking over the bus
    │   ├── NotConnectedError               no NATS server answers at the configured URL
    │   ├── RequestTimeoutError (TimeoutError)
    │   ├── NoRespondersError               nothing serves that subject (is the service up?)
    │   ├── PermissionDeniedError           the server refused this identity a subject
    │   ├── RemoteError                     the service replied with a structured error
    │   ├── EmbeddedNatsError               the embedded nats-server could not start
    │   └── DeployError                     a blue/green step failed (start, health, smoke...)
    │       └── DeploymentConflict          the deployments record changed under us (CAS lost)
    └── ServiceError                        raised in a handler to reply with a chosen error
        (control flow, not logged as a failure)

``ServiceError`` is the handler's way to answer "no" with a code; anything else
a handler raises becomes an ``internal`` error reply and is logged.
"""

from __future__ import annotations

from typing import Any

from agentbus.interfaces.error_reply import ErrorCode, ErrorReply


class FrameworkError(Exception):
    """Root of every error raised by ``agentbus.framework``."""


class ConfigError(FrameworkError, ValueError):
    """Settings, a config file or a declaration is wrong; the message says how to fix it."""


class BusError(FrameworkError, RuntimeError):
    """Something failed on the bus."""


class NotConnectedError(BusError):
    """No NATS server could be reached."""


class RequestTimeoutError(BusError, TimeoutError):
    """No reply arrived in time."""


class PermissionDeniedError(BusError):
    """The NATS server refused a publish or subscribe to this connection's identity."""


class NoRespondersError(BusError):
    """No service listens on the subject."""


class EmbeddedNatsError(BusError):
    """The embedded nats-server did not start."""


class DeployError(BusError):
    """A blue/green deployment step failed; the message names the step and the version."""


class DeploymentConflict(DeployError):
    """The deployments record changed since it was read: someone else promoted or rolled back."""


class RemoteError(BusError):
    """A service answered with a structured error reply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message}")
        self.reply = reply

    @property
    def code(self) -> str:
        return self.reply.code

    @property
    def details(self) -> dict[str, Any]:
        return dict(self.reply.details)


class ServiceError(FrameworkError):
    """Raise in a handler to reply with this error instead of a result."""

    def __init__(self, code: ErrorCode | str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reply = ErrorReply.of(str(code), message, **details)
