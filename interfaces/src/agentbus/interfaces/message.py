"""The base of every message on the bus and the declaration of an interface.

A message is a closed pydantic model: unknown fields are rejected, so that any
change of shape is visible to the compatibility checker and to receivers. An
:class:`Interface` ties message models to a name and a semantic version; the
subject a message travels on is derived from it (see :mod:`.subjects`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from agentbus.interfaces.errors import RegistryError
from agentbus.interfaces.semver import Version


class BusMessage(BaseModel):
    """Base of every bus message: closed and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InterfaceKind(StrEnum):
    """How an interface is used on the bus."""

    REQUEST = "request"
    """One request, one reply (or a structured error reply)."""
    EVENT = "event"
    """Published to a JetStream stream; any number of subscribers."""
    STREAM = "stream"
    """One request, an ordered series of chunks on the reply subject."""


MessageT = TypeVar("MessageT", bound=BusMessage)
ReplyT = TypeVar("ReplyT", bound=BusMessage)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")


@dataclass(frozen=True, slots=True)
class Interface(Generic[MessageT, ReplyT]):
    """A named, versioned contract: what is sent and, for requests, what comes back.

    ``name`` is dotted, domain first (``model.language.generate``); the first part
    is the domain. A new version is a new declaration next to the old one.
    """

    name: str
    version: Version
    kind: InterfaceKind
    message: type[MessageT]
    reply: type[ReplyT] | None = None
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise RegistryError(
                f"invalid interface name {self.name!r}: use dotted lower-case words with a "
                "domain first, e.g. 'model.language.generate'"
            )
        if self.kind is InterfaceKind.EVENT and self.reply is not None:
            raise RegistryError(f"event interface {self.name} cannot declare a reply model")
        if self.kind is not InterfaceKind.EVENT and self.reply is None:
            raise RegistryError(f"{self.kind} interface {self.name} needs a reply model")

    @property
    def domain(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        """``name@version``, how the CLI and the registry refer to one version."""
        return f"{self.name}@{self.version}"

    def json_schema(self) -> dict[str, Any]:
        """The exported document: metadata plus the JSON Schema of each message."""
        document: dict[str, Any] = {
            "interface": self.name,
            "version": str(self.version),
            "kind": self.kind.value,
            "description": self.description,
            "message": self.message.model_json_schema(),
        }
        if self.reply is not None:
            document["reply"] = self.reply.model_json_schema()
        return document


def request_interface(
    name: str,
    version: str,
    *,
    request: type[MessageT],
    reply: type[ReplyT],
    description: str = "",
) -> Interface[MessageT, ReplyT]:
    """Declare a request/reply interface."""
    return Interface(
        name, Version.parse(version), InterfaceKind.REQUEST, request, reply, description
    )


def stream_interface(
    name: str,
    version: str,
    *,
    request: type[MessageT],
    chunk: type[ReplyT],
    description: str = "",
) -> Interface[MessageT, ReplyT]:
    """Declare an interface whose reply is an ordered stream of ``chunk`` messages."""
    return Interface(
        name, Version.parse(version), InterfaceKind.STREAM, request, chunk, description
    )


def event_interface(
    name: str,
    version: str,
    *,
    payload: type[MessageT],
    description: str = "",
) -> Interface[MessageT, BusMessage]:
    """Declare an event interface (published to the events stream)."""
    return Interface(name, Version.parse(version), InterfaceKind.EVENT, payload, None, description)
