"""The wire: how agentbus messages are encoded, and the headers the framework reads and writes.

Requests and replies are pydantic JSON. An error reply is told from a result by its
headers (``Agentbus-Error``, or the NATS micro ``Nats-Service-Error`` of a plain micro
service), see :mod:`agentbus.interfaces.error_reply`.

Stream interfaces: one request, an ordered series of chunks on the reply subject::

    caller  --request (reply=<inbox>, Agentbus-Cancel: <inbox>.cancel)-->  service
    caller  <--chunk  (Agentbus-Seq: 0)--                                   service
    caller  <--chunk  (Agentbus-Seq: 1)--                                   service
    caller  <--end    (Agentbus-Seq: 2, Agentbus-Stream: end, empty body)--  service
            or an error reply (Agentbus-Seq: n, Agentbus-Error: <code>, ErrorReply body)

A caller that stops early publishes anything to the cancel subject; the service
cancels the handler's task, so the handler's ``finally`` blocks run (closing,
for example, a provider's HTTP stream). Sequence numbers let the caller notice a
lost chunk (a slow consumer) instead of returning a silently damaged answer.
Server side: :class:`~agentbus.framework.endpoint.StreamEndpoint`; client side:
:class:`~agentbus.framework.chunk_stream.ChunkStream`.
"""

from __future__ import annotations

from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from agentbus.interfaces.error_reply import (
    ERROR_HEADER,
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    ErrorReply,
)

SEQ_HEADER = "Agentbus-Seq"
"""A stream chunk's position, from 0."""
STREAM_HEADER = "Agentbus-Stream"
"""``end`` on the empty message that ends a stream."""
CANCEL_HEADER = "Agentbus-Cancel"
"""The subject on which a stream's caller cancels it."""
TIMEOUT_HEADER = "Agentbus-Timeout"
"""How many seconds the caller waits for the reply (a stream's: for its first chunk), relative,
so that clocks need not agree. A service drops a request still queued when it runs out, and
runs no handler for it: nobody would read the answer."""
LONGEST_TIMEOUT = 86400.0
"""Longer timeouts (or a value that is no number) count as none: the header is the caller's
word, and a service only uses it to give up early."""
END = "end"
NO_RESPONDERS_STATUS = "503"
"""The ``Status`` header of the NATS server's no-responders message."""


def timeout_header(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def deadline_of(headers: dict[str, str] | None, received: float) -> float | None:
    """The ``time.monotonic()`` after which nobody waits for the answer to a request received
    at ``received``, from its :data:`TIMEOUT_HEADER`; ``None`` when it carries none."""
    text = (headers or {}).get(TIMEOUT_HEADER)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    if seconds != seconds or seconds > LONGEST_TIMEOUT:  # NaN, inf
        return None
    return received + max(seconds, 0.0)


def to_json(message: BaseModel) -> bytes:
    return message.__pydantic_serializer__.to_json(message)


def error_from(msg: Msg) -> ErrorReply | None:
    """The structured error in a reply, or ``None`` when it is a result."""
    headers = msg.headers
    if not headers:
        return None
    if ERROR_HEADER in headers:
        try:
            return ErrorReply.model_validate_json(msg.data, extra="ignore")
        except ValidationError:
            return ErrorReply.of(headers[ERROR_HEADER], headers.get(SERVICE_ERROR_HEADER, ""))
    if SERVICE_ERROR_HEADER in headers:  # a plain NATS micro service
        code = headers.get(SERVICE_ERROR_CODE_HEADER, "500")
        return ErrorReply.of(f"status_{code}", headers[SERVICE_ERROR_HEADER])
    return None
