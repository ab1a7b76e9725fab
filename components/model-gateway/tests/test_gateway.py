"""The gateway over a real nats-server, talking to provider fakes over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agentbus.framework import Bus, RemoteError, error_from
from agentbus.interfaces.catalog.model import (
    CATALOG,
    EMBED,
    GENERATE,
    STREAM,
    AssistantMessage,
    CatalogRequest,
    EmbedRequest,
    Finish,
    GenerateRequest,
    GenerationSettings,
    ImagePart,
    StructuredOutput,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    UsageUpdate,
    UserMessage,
)
from agentbus.interfaces.subjects import as_caller, subject_for
from agentbus.model_gateway.service import ModelGateway
from agentbus.model_gateway.testing import (
    WEATHER,
    FakeAnthropic,
    FakeOpenAI,
    Scripted,
    anthropic_message,
    anthropic_stream,
    ask,
    collect,
    malformed,
    openai_error,
    openai_stream,
    openai_text,
)


async def test_generates_text_and_reports_usage(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(openai_text("Paris.", usage=(21, 3)))

    reply = await bus.request(GENERATE, ask("fast", "Capital of France?"))

    assert reply.message.text == "Paris."
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (21, 3)
    assert (reply.alias, reply.provider, reply.model) == ("fast", "openai", "fake-gpt")
    sent = fake_openai.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-fake-secret"
    assert sent.json["model"] == "gpt-fake"
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    registry = gateway.metrics.registry
    labels = {"alias": "fast", "provider": "openai", "caller": "test"}
    assert (
        registry.get_sample_value("agentbus_model_tokens_total", {**labels, "direction": "in"})
        == 21
    )
    assert (
        registry.get_sample_value(
            "agentbus_model_requests_total", {**labels, "operation": "generate"}
        )
        == 1
    )


async def test_openai_tool_calls_round_trip(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(openai_text("", tool_calls=[("call_7", "get_weather", {"city": "Oslo"})]))

    reply = await bus.request(GENERATE, ask("fast", "Weather in Oslo?", tools=[WEATHER]))

    assert reply.finish_reason == "tool_calls"
    assert reply.message.tool_calls == [
        ToolCall(id="call_7", name="get_weather", arguments={"city": "Oslo"})
    ]
    sent = fake_openai.requests[0].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["city"] == {"type": "string"}

    follow_up = GenerateRequest(
        model="fast",
        messages=[
            UserMessage(content="Weather in Oslo?"),
            reply.message,
            ToolResultMessage(tool_call_id="call_7", name="get_weather", content="-3 C, snow"),
        ],
        tools=[WEATHER],
    )
    await bus.request(GENERATE, follow_up)
    sent = fake_openai.requests[1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "call_7", "content": "-3 C, snow"}


async def test_anthropic_tool_use_and_system_prompt(
    gateway: ModelGateway, bus: Bus, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        anthropic_message("Checking.", tool_uses=[("toolu_1", "get_weather", {"city": "Rome"})])
    )

    reply = await bus.request(GENERATE, ask("claude", "Weather in Rome?", tools=[WEATHER]))

    assert reply.message == AssistantMessage(
        text="Checking.",
        tool_calls=[ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Rome"})],
    )
    assert (reply.finish_reason, reply.provider, reply.model) == (
        "tool_calls",
        "anthropic",
        "fake-claude",
    )
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-fake"
    assert sent.json["system"] == "Be brief."
    assert sent.json["messages"] == [{"role": "user", "content": "Weather in Rome?"}]
    assert sent.json["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}


@pytest.mark.parametrize("alias", ["fast", "claude"])
async def test_streams_text_and_tool_call_deltas_in_order(
    gateway: ModelGateway,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    alias: str,
) -> None:
    pieces = ['{"city"', ': "Oslo"}']
    fake_openai.script(
        openai_stream(["It ", "is ", "cold"], tool_calls=[("c1", "get_weather", pieces)])
    )
    fake_anthropic.script(
        anthropic_stream(["It ", "is ", "cold"], tool_uses=[("c1", "get_weather", pieces)])
    )

    parts = await collect(bus, ask(alias, tools=[WEATHER]))

    assert [p.text for p in parts if isinstance(p, TextDelta)] == ["It ", "is ", "cold"]
    calls = [p for p in parts if isinstance(p, ToolCallDelta)]
    assert (calls[0].id, calls[0].name) == ("c1", "get_weather")
    assert json.loads("".join(c.arguments for c in calls)) == {"city": "Oslo"}
    assert isinstance(parts[-2], UsageUpdate)
    finish = parts[-1]
    assert isinstance(finish, Finish)
    assert (finish.finish_reason, finish.alias) == ("tool_calls", alias)
    assert (finish.usage.input_tokens, finish.usage.output_tokens) == (12, 7)
    assert (
        gateway.metrics.registry.get_sample_value(
            "agentbus_model_first_chunk_seconds_count",
            {"alias": alias, "provider": finish.provider, "caller": "test"},
        )
        == 1
    )


async def test_retries_429_after_the_retry_after_delay(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(openai_error(429, "slow down", retry_after=0.4), openai_text("done"))

    started = time.perf_counter()
    reply = await bus.request(GENERATE, ask("fast"))

    assert reply.message.text == "done"
    assert time.perf_counter() - started >= 0.4
    assert len(fake_openai.requests) == 2
    assert (
        gateway.metrics.registry.get_sample_value(
            "agentbus_model_retries_total", {"provider": "openai", "kind": "rate_limited"}
        )
        == 1
    )


async def test_gives_up_with_limited_after_the_retries(
    start_service: Any, write_models: Any, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    write_models(openai={"retries": 1})
    await start_service(ModelGateway)
    fake_openai.script(openai_error(429, retry_after=0.05), openai_error(429, retry_after=7))

    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))

    assert caught.value.code == "limited"
    assert caught.value.details["retry_after"] == 7
    assert len(fake_openai.requests) == 2


async def test_falls_back_to_the_next_alias_on_server_errors(
    start_service: Any,
    write_models: Any,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    write_models(openai={"retries": 1}, fast='fallback = ["claude"]')
    gateway = await start_service(ModelGateway)
    fake_openai.script(openai_error(503), openai_error(500))
    fake_anthropic.script(anthropic_message("from claude"))

    reply = await bus.request(GENERATE, ask("fast"))

    assert (reply.message.text, reply.alias, reply.provider) == (
        "from claude",
        "claude",
        "anthropic",
    )
    assert len(fake_openai.requests) == 2  # the retry happened before falling back
    assert (
        gateway.metrics.registry.get_sample_value(
            "agentbus_model_fallbacks_total", {"alias": "fast", "to": "claude"}
        )
        == 1
    )


async def test_a_long_retry_after_falls_back_at_once(
    start_service: Any,
    write_models: Any,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    write_models(openai={"max_backoff": 1}, fast='fallback = ["claude"]')
    await start_service(ModelGateway)
    fake_openai.script(openai_error(429, retry_after=30))

    started = time.perf_counter()
    reply = await bus.request(GENERATE, ask("fast"))

    assert reply.alias == "claude"
    assert time.perf_counter() - started < 5
    assert len(fake_openai.requests) == 1


async def test_does_not_fall_back_on_a_request_error(
    start_service: Any,
    write_models: Any,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    write_models(fast='fallback = ["claude"]')
    await start_service(ModelGateway)
    fake_openai.script(openai_error(400, "messages: invalid role"))

    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))

    assert caught.value.code == "invalid"
    assert "invalid role" in caught.value.reply.message
    assert caught.value.details["attempts"] == [
        {"alias": "fast", "provider": "openai", "kind": "bad_request", "status": 400}
    ]
    assert fake_anthropic.requests == []


async def test_stream_falls_back_before_the_first_chunk(
    start_service: Any,
    write_models: Any,
    bus: Bus,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    write_models(openai={"retries": 0}, fast='fallback = ["claude"]')
    await start_service(ModelGateway)
    fake_openai.script(openai_error(502))

    parts = await collect(bus, ask("fast"))

    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "Hello world"
    assert isinstance(parts[-1], Finish)
    assert parts[-1].alias == "claude"


async def test_times_out_with_a_structured_error(
    start_service: Any, write_models: Any, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    write_models(openai={"timeout": 0.3, "retries": 0})
    await start_service(ModelGateway)
    fake_openai.script(Scripted(json={}, delay=3))

    started = time.perf_counter()
    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))

    assert time.perf_counter() - started < 2.5
    assert caught.value.code == "timeout"
    assert "timeout" in caught.value.reply.message  # says which setting to raise
    assert caught.value.details["kind"] == "timeout"


async def test_malformed_provider_response_is_a_structured_error(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(malformed())

    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))

    assert caught.value.code == "upstream"
    assert caught.value.details["kind"] == "malformed"
    assert "malformed" in caught.value.reply.message


async def test_malformed_tool_arguments_are_a_structured_error(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    body = openai_text("", tool_calls=[("c", "get_weather", {})]).json
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{city: Oslo"
    fake_openai.script(Scripted(json=body))

    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast", tools=[WEATHER]))

    assert caught.value.details["kind"] == "malformed"
    assert "not JSON" in caught.value.reply.message


async def test_cancelling_a_stream_stops_the_upstream_request(
    gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(openai_stream([f"w{i} " for i in range(60)], event_delay=0.05))

    received = []
    async with bus.stream(STREAM, ask("fast")) as chunks:
        async for chunk in chunks:
            if isinstance(chunk.part, TextDelta):
                received.append(chunk.part.text)
            if len(received) == 3:
                break

    assert received == ["w0 ", "w1 ", "w2 "]
    assert await asyncio.to_thread(fake_openai.disconnected.wait, 5), "the upstream kept streaming"
    assert fake_openai.streams_completed == 0


async def test_a_cancelled_caller_task_cancels_the_stream(
    gateway: ModelGateway, bus: Bus, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(anthropic_stream([f"w{i} " for i in range(60)], event_delay=0.05))
    first = asyncio.Event()

    async def consume() -> None:
        async with bus.stream(STREAM, ask("claude")) as chunks:
            async for _ in chunks:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(fake_anthropic.disconnected.wait, 5)


@pytest.mark.parametrize(
    ("request_", "capability"),
    [
        (ask("plain", tools=[WEATHER]), "tools"),
        (
            GenerateRequest(
                model="fast",
                messages=[
                    UserMessage(
                        content=[TextPart(text="What is this?"), ImagePart(url="https://x/y.png")]
                    )
                ],
            ),
            "vision",
        ),
        (
            ask(
                "claude",
                settings=GenerationSettings(
                    structured_output=StructuredOutput(json_schema={"type": "object"})
                ),
            ),
            "structured_output",
        ),
        (ask("embed"), "language"),
    ],
)
async def test_capability_mismatch_names_the_capability(
    gateway: ModelGateway,
    bus: Bus,
    fake_openai: FakeOpenAI,
    request_: GenerateRequest,
    capability: str,
) -> None:
    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, request_)

    assert caught.value.code == "invalid"
    assert caught.value.details["capability"] == capability
    assert capability in caught.value.reply.message
    assert fake_openai.requests == []


async def test_capability_mismatch_on_a_stream_is_an_error_chunk(
    gateway: ModelGateway, bus: Bus
) -> None:
    with pytest.raises(RemoteError) as caught:
        await collect(bus, ask("plain", tools=[WEATHER]))
    assert caught.value.details["capability"] == "tools"


async def test_two_replicas_share_the_load(
    start_service: Any, write_models: Any, bus: Bus, fake_openai: FakeOpenAI
) -> None:
    write_models()
    one = await start_service(ModelGateway, instance="gw-1")
    two = await start_service(ModelGateway, instance="gw-2")

    replies = await asyncio.gather(*(bus.request(GENERATE, ask("fast")) for _ in range(40)))
    streamed = await asyncio.gather(*(collect(bus, ask("fast")) for _ in range(20)))

    assert all(r.message.text == "Hello world" for r in replies)
    assert all(isinstance(parts[-1], Finish) for parts in streamed)
    served = [
        {e.interface.name: e.num_requests for e in service.endpoints} for service in (one, two)
    ]
    for counts in served:
        assert counts["model.language.generate"] > 0
    assert sum(c["model.language.generate"] for c in served) == 40
    assert sum(c["model.language.stream"] for c in served) == 20


@pytest.mark.parametrize("interface", [GENERATE, STREAM])
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b'{"model": "fast"}', "schema_violation"),
        (b'{"model": "fast", "messages": [{"role": "robot", "content": "x"}]}', "schema_violation"),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "x": 1}',
            "schema_violation",
        ),
    ],
)
async def test_bad_bus_input_gets_a_structured_error(
    gateway: ModelGateway, bus: Bus, interface: Any, payload: bytes, code: str
) -> None:
    msg = await bus.request_raw(as_caller(subject_for(interface), "test"), payload, timeout=5)

    error = error_from(msg)
    assert error is not None
    assert error.code == code
    assert error.message


async def test_no_model_configured_says_which_setting_to_add(start_service: Any, bus: Bus) -> None:
    await start_service(ModelGateway)

    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))

    assert caught.value.code == "not_configured"
    assert "models.toml" in caught.value.reply.message
    assert "OPENAI_BASE_URL" in caught.value.reply.message
    with pytest.raises(RemoteError) as streamed:
        await collect(bus, ask("fast"))
    assert streamed.value.code == "not_configured"
    catalog = await bus.request(CATALOG, CatalogRequest())
    assert catalog.aliases == []


async def test_unknown_alias_lists_the_configured_ones(gateway: ModelGateway, bus: Bus) -> None:
    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("huge"))

    assert caught.value.code == "not_configured"
    assert "[aliases.huge]" in caught.value.reply.message
    assert caught.value.details["configured"] == ["claude", "embed", "fast", "plain"]


async def test_catalog_lists_aliases_with_capabilities(gateway: ModelGateway, bus: Bus) -> None:
    catalog = await bus.request(CATALOG, CatalogRequest())

    by_alias = {a.alias: a for a in catalog.aliases}
    assert sorted(by_alias) == ["claude", "embed", "fast", "plain"]
    assert by_alias["fast"].tools
    assert by_alias["fast"].context_window == 128000
    assert by_alias["claude"].vision
    assert by_alias["claude"].provider_kind == "anthropic"
    assert (by_alias["embed"].capability, by_alias["embed"].dimensions) == ("embedding", 4)
    assert catalog.source.endswith("models.toml")
    assert "sk-fake-secret" not in catalog.model_dump_json()


async def test_embeds_texts(gateway: ModelGateway, bus: Bus, fake_openai: FakeOpenAI) -> None:
    reply = await bus.request(EMBED, EmbedRequest(model="embed", texts=["a", "b", "c"]))

    assert len(reply.vectors) == 3
    assert reply.dimensions == 4
    assert reply.usage.input_tokens == 9
    assert fake_openai.requests[0].json["input"] == ["a", "b", "c"]
    with pytest.raises(RemoteError) as caught:
        await bus.request(EMBED, EmbedRequest(model="fast", texts=["a"]))
    assert caught.value.details["capability"] == "embedding"


async def test_provider_auth_failure_says_to_check_the_key(
    gateway: ModelGateway, bus: Bus, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        Scripted(
            status=401, json={"type": "error", "error": {"type": "auth", "message": "bad key"}}
        )
    )

    with pytest.raises(RemoteError) as caught:
        await collect(bus, ask("claude"))

    assert caught.value.code == "not_configured"
    assert "api_key" in caught.value.reply.message
