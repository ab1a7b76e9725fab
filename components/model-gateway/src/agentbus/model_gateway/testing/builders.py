"""Builders for tests of model-gateway callers: a request, a tool, a whole stream.

In the kit, so the gateway's own tests and any other component's use them alike.
"""

from __future__ import annotations

from typing import Any

from agentbus.framework import Bus
from agentbus.interfaces.catalog.model import (
    STREAM,
    GenerateRequest,
    StreamChunk,
    SystemMessage,
    ToolDefinition,
    UserMessage,
)

WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def ask(model: str, text: str = "Hi", **fields: Any) -> GenerateRequest:
    return GenerateRequest(
        model=model,
        messages=[SystemMessage(content="Be brief."), UserMessage(content=text)],
        **fields,
    )


async def collect(bus: Bus, request: GenerateRequest, timeout: float = 10) -> list[Any]:
    """Every part of a stream, in order."""
    parts = []
    async with bus.stream(STREAM, request, timeout=timeout) as chunks:
        async for chunk in chunks:
            if not isinstance(chunk, StreamChunk):
                raise TypeError(f"not a StreamChunk: {chunk!r}")
            parts.append(chunk.part)
    return parts
