"""Which exceptions mean "the bus is out", not "the handler is wrong".

A handler that fails because NATS or JetStream is unreachable, restarting or not
answering (a KV write that times out during a server restart, a closed or reconnecting
connection, JetStream's "no responders" or 503) has hit a passing fault: its caller is
answered ``unavailable`` (retry), never ``internal`` (which callers treat as permanent).
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

from agentbus.framework.errors import NoRespondersError, NotConnectedError, RequestTimeoutError

OUTAGES: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,  # also FlushTimeoutError, DrainTimeoutError, FetchTimeoutError
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    NotConnectedError,
    NoRespondersError,  # a service this handler calls is not running (now)
    RequestTimeoutError,  # ... or did not answer in time
)
UNAVAILABLE_STATUS = 503


def bus_outage(exc: BaseException) -> BaseException | None:
    """The bus fault behind ``exc`` (itself, or what it was raised ``from``), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OUTAGES):
            return current
        if isinstance(current, nats.js.errors.APIError) and current.code == UNAVAILABLE_STATUS:
            return current
        current = current.__cause__
    return None
