"""Errors that cross the bus are data: a code, a message that says what to do, details.

An error reply carries the :class:`ErrorReply` JSON as its body and the NATS
service-protocol headers (``Nats-Service-Error``, ``Nats-Service-Error-Code``),
so standard NATS tooling recognises it and counts it, plus ``Agentbus-Error``
with our code so a receiver can tell an error from a result without parsing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, JsonValue

from agentbus.interfaces.message import BusMessage

ERROR_HEADER = "Agentbus-Error"
SERVICE_ERROR_HEADER = "Nats-Service-Error"
SERVICE_ERROR_CODE_HEADER = "Nats-Service-Error-Code"


class ErrorCode(StrEnum):
    """Stable error codes; the value is what travels."""

    BAD_JSON = "bad_json"
    """The payload is not JSON."""
    SCHEMA_VIOLATION = "schema_violation"
    """The payload is JSON but does not match the interface's message model."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """The sender speaks a major version of the interface this service does not serve."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The payload is larger than the service accepts."""
    INTERNAL = "internal"
    """The handler failed; the details name the exception type."""
    UNAVAILABLE = "unavailable"
    """The service is stopping or a dependency is down: retry later or elsewhere."""
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    LIMITED = "limited"
    """A rate or concurrency limit was hit: retry after the delay in the details."""
    INVALID = "invalid"
    """The request is well-formed but cannot be served as asked (e.g. a missing capability)."""
    NOT_CONFIGURED = "not_configured"
    """The service lacks configuration; the message names the setting to add."""
    UPSTREAM = "upstream"
    """An upstream provider failed."""
    OVERLOADED = "overloaded"
    """The service's queue is full: retry after ``retry_after`` seconds (``Bus.request`` does,
    with jitter, within its timeout). Sent at once, before any work."""


_STATUS = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.SCHEMA_VIOLATION: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.INVALID: 400,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UPSTREAM: 502,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.NOT_CONFIGURED: 503,
    ErrorCode.TIMEOUT: 504,
}


def status_of(code: str) -> int:
    """The HTTP-like status used in ``Nats-Service-Error-Code``; 500 for unknown codes."""
    try:
        return _STATUS[ErrorCode(code)]
    except ValueError:
        return 500


class ErrorReply(BusMessage):
    """The body of an error reply."""

    code: str = Field(description="A stable code, usually an ErrorCode value.")
    message: str = Field(description="What went wrong and what to do about it.")
    details: dict[str, JsonValue] = Field(default_factory=dict)
    retry_after: float | None = Field(
        default=None,
        ge=0,
        exclude_if=lambda value: value is None,
        description="Seconds after which a retry may succeed (``overloaded``); absent from the "
        "JSON when unset, so receivers that predate it read every reply as before.",
    )

    def headers(self) -> dict[str, str]:
        return {
            ERROR_HEADER: self.code,
            SERVICE_ERROR_HEADER: self.message.replace("\r", " ").replace("\n", " "),
            SERVICE_ERROR_CODE_HEADER: str(status_of(self.code)),
        }

    @classmethod
    def of(cls, code: str, message: str, **details: Any) -> ErrorReply:
        return cls(code=code, message=message, details=details)
