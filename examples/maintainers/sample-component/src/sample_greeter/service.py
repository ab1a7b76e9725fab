"""The sample component as a service: ``sample.greet`` on the bus, deployed blue/green.

Its version is the one in ``context/context.json``, so a promoted update answers with
its new version.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentbus.framework import MessageContext, Service, handles
from agentbus.interfaces import BusMessage, request_interface
from sample_greeter import greeting

CONTEXT = Path(__file__).resolve().parents[2] / "context" / "context.json"


class GreetRequest(BusMessage):
    name: str = ""


class GreetReply(BusMessage):
    greeting: str
    version: str


GREET = request_interface(
    "sample.greet", "1.0.0", request=GreetRequest, reply=GreetReply, description="Greet someone."
)


class SampleGreeter(Service):
    """Greets through greetlib."""

    name = "sample-greeter"
    version = json.loads(CONTEXT.read_text(encoding="utf-8"))["version"]

    @handles(GREET)
    async def greet(self, request: GreetRequest, ctx: MessageContext) -> GreetReply:
        return GreetReply(greeting=greeting(request.name), version=self.version)
