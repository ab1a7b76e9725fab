"""What a handler knows about the message it handles, and how it talks onwards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from agentbus.interfaces.message import BusMessage, Interface
from agentbus.interfaces.metadata import Metadata
from agentbus.interfaces.subjects import caller_of

if TYPE_CHECKING:
    from nats.js.api import PubAck

    from agentbus.framework.bus import Bus

ReplyT = TypeVar("ReplyT", bound=BusMessage)


class MessageContext:
    """Passed to every handler: the message's metadata and the service's bus.

    Requests and events sent through the context carry this message as their
    cause (same correlation id and trace). Metadata is parsed on first use:
    most handlers never look at it.
    """

    __slots__ = ("_headers", "_interface", "_metadata", "bus", "subject")

    def __init__(
        self,
        subject: str,
        bus: Bus,
        headers: dict[str, str] | None,
        interface: Interface[Any, Any],
    ) -> None:
        self.subject = subject
        self.bus = bus
        self._headers = headers
        self._interface = interface
        self._metadata: Metadata | None = None

    @property
    def metadata(self) -> Metadata:
        if self._metadata is None:
            self._metadata = Metadata.from_headers(
                self._headers, interface=self._interface.name, version=self._interface.version
            )
        return self._metadata

    @property
    def caller(self) -> str:
        """Who sent this request, as the NATS server vouches for it: the last token of the
        subject, which agentbus permissions let an identity set to its own name only.
        Never the ``src`` of the metadata, which the sender writes."""
        return caller_of(self.subject)

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers or {})

    async def request(
        self,
        interface: Interface[Any, ReplyT],
        message: BusMessage,
        *,
        timeout: float | None = None,
    ) -> ReplyT:
        return await self.bus.request(interface, message, timeout=timeout, cause=self.metadata)

    async def publish(
        self, interface: Interface[Any, Any], message: BusMessage, *, qualifier: str | None = None
    ) -> PubAck:
        return await self.bus.publish(interface, message, cause=self.metadata, qualifier=qualifier)
