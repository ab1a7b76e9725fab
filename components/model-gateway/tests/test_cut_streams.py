"""A provider stream that ends mid-answer (no finish reason, no ``[DONE]``/``message_stop``)
is an ``upstream`` failure, never a finished answer: retried or sent to the fallback while
nothing was forwarded yet, an explicit error at the end of the stream after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentbus.framework import Bus, RemoteError
from agentbus.interfaces.catalog.model import (
    STREAM,
    Finish,
    GenerateRequest,
    StreamChunk,
    TextDelta,
)
from agentbus.model_gateway.service import ModelGateway
from agentbus.model_gateway.testing import (
    FakeAnthropic,
    FakeOpenAI,
    Scripted,
    anthropic_stream,
    ask,
    collect,
    openai_stream,
)

# events before the texts: OpenAI's role chunk; Anthropic's message_start and block start
PROVIDERS: dict[str, tuple[str, Callable[..., Scripted], int]] = {
    "fast": ("fake_openai", openai_stream, 1),
    "claude": ("fake_anthropic", anthropic_stream, 2),
}


async def parts_until_error(bus: Bus, request: GenerateRequest) -> tuple[list[Any], RemoteError]:
    """The parts a caller got before the stream failed, and the failure."""
    parts: list[Any] = []

    async def read() -> None:
        async with bus.stream(STREAM, request, timeout=10) as chunks:
            async for chunk in chunks:
                assert isinstance(chunk, StreamChunk)
                parts.append(chunk.part)

    with pytest.raises(RemoteError) as caught:
        await read()
    return parts, caught.value


@pytest.mark.parametrize("alias", ["fast", "claude"])
async def test_a_stream_cut_after_text_was_forwarded_ends_with_an_upstream_error(
    gateway: ModelGateway, bus: Bus, request: pytest.FixtureRequest, alias: str
) -> None:
    fixture, stream, preamble = PROVIDERS[alias]
    fake: FakeOpenAI | FakeAnthropic = request.getfixturevalue(fixture)
    fake.script(stream(["It ", "is ", "cold"], cut_after=preamble + 2))

    parts, error = await parts_until_error(bus, ask(alias))

    assert [p.text for p in parts if isinstance(p, TextDelta)] == ["It ", "is "]
    assert not any(isinstance(p, Finish) for p in parts)
    assert error.code == "upstream"
    assert error.details["kind"] == "incomplete"
    assert "before the answer was finished" in error.reply.message
    assert len(fake.requests) == 1  # forwarded text cannot be taken back: no retry
    assert fake.streams_completed == 0


@pytest.mark.parametrize("alias", ["fast", "claude"])
async def test_a_stream_cut_before_any_text_is_retried(
    start_service: Any, write_models: Any, bus: Bus, request: pytest.FixtureRequest, alias: str
) -> None:
    write_models(openai={"retries": 1}, anthropic={"retries": 1})
    await start_service(ModelGateway)
    fixture, stream, preamble = PROVIDERS[alias]
    fake: FakeOpenAI | FakeAnthropic = request.getfixturevalue(fixture)
    fake.script(stream(["lost"], cut_after=preamble), stream(["It ", "is ", "cold"]))

    parts = await collect(bus, ask(alias))

    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "It is cold"
    assert isinstance(parts[-1], Finish)
    assert len(fake.requests) == 2
    assert fake.streams_completed == 1


async def test_a_stream_cut_before_any_text_falls_back(
    start_service: Any,
    write_models: Any,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    write_models(openai={"retries": 0}, fast='fallback = ["claude"]')
    gateway = await start_service(ModelGateway)
    fake_openai.script(openai_stream(["lost"], cut_after=1))

    parts = await collect(bus, ask("fast"))

    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "Hello world"
    assert isinstance(parts[-1], Finish)
    assert (parts[-1].alias, parts[-1].finish_reason) == ("claude", "stop")
    assert (
        gateway.metrics.registry.get_sample_value(
            "agentbus_model_errors_total",
            {"alias": "fast", "provider": "openai", "caller": "test", "kind": "incomplete"},
        )
        == 1
    )
