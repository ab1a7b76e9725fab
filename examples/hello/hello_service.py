"""A complete agentbus service: one request interface, one event, config, counters.

Run it with ``agentbus up -f examples/hello/agentbus.toml`` and call it with
``agentbus request hello.greet '{"name": "Ada"}'``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentbus.framework import MessageContext, Service, ServiceError, handles, subscribes
from agentbus.interfaces import (
    BusMessage,
    ErrorCode,
    Registry,
    event_interface,
    request_interface,
)


class GreetRequest(BusMessage):
    name: str = Field(min_length=1, max_length=100)


class GreetReply(BusMessage):
    greeting: str
    served_by: str


class Greeted(BusMessage):
    name: str


GREET = request_interface(
    "hello.greet", "1.0.0", request=GreetRequest, reply=GreetReply, description="Greet someone."
)
GREETED = event_interface(
    "hello.greeted", "1.0.0", payload=Greeted, description="Someone was greeted."
)
REGISTRY = Registry([GREET, GREETED])


class HelloService(Service):
    """Greets people and counts the greetings it hears about."""

    name = "hello"
    version = "1.0.0"
    emits = (GREETED,)

    async def initialize(self) -> None:
        self.greeting = "Hello"
        self.heard: list[str] = []

    async def on_config_change(self, config: dict[str, Any]) -> None:
        self.greeting = str(config.get("greeting", "Hello"))

    @handles(GREET)
    async def greet(self, request: GreetRequest, ctx: MessageContext) -> GreetReply:
        if request.name.lower() == "nobody":
            raise ServiceError(ErrorCode.INVALID, "nobody cannot be greeted; give a name")
        await ctx.publish(GREETED, Greeted(name=request.name))
        return GreetReply(greeting=f"{self.greeting}, {request.name}!", served_by=self.instance)

    @subscribes(GREETED)
    async def on_greeted(self, event: Greeted, ctx: MessageContext) -> None:
        self.heard.append(event.name)
