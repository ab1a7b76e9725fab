"""models.toml edited while the gateway runs: new requests use it, running ones finish as begun."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentbus.framework import Bus, ConfigError, RemoteError
from agentbus.framework.testing import eventually
from agentbus.interfaces.catalog.model import (
    CATALOG,
    EMBED,
    GENERATE,
    STREAM,
    CatalogRequest,
    EmbedRequest,
    Finish,
    StreamChunk,
    TextDelta,
)
from agentbus.model_gateway import config
from agentbus.model_gateway.service import ModelGateway
from agentbus.model_gateway.testing import (
    FakeAnthropic,
    FakeOpenAI,
    ask,
    collect,
    openai_stream,
    openai_text,
)

WATCH = 0.05
"""``file_watch_interval`` of the gateways here: seconds between looks at models.toml."""

EMBED_ALIAS = """
[aliases.embed]
provider = "openai"
model = "embed-fake"
capability = "embedding"
"""


def models_toml(
    openai: FakeOpenAI, anthropic: FakeAnthropic, *, fast: str = "openai", extra: str = ""
) -> str:
    """Both fakes as providers and alias ``fast`` on the one named, plus ``extra`` TOML."""
    return f"""
[providers.openai]
kind = "openai"
base_url = "{openai.base_url}"
api_key = "sk-fake-secret"
backoff = 0.01
timeout = 5

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic.base_url}"
api_key = "sk-ant-fake"
backoff = 0.01
timeout = 5

[aliases.fast]
provider = "{fast}"
model = "{fast}-model"
{extra}
"""


def save(path: Path, text: str) -> None:
    """Replace the file in one step, as editors do: the watch never sees half a file."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@pytest.fixture
def models_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``AGENTBUS_MODELS_FILE`` points; not written yet."""
    path = tmp_path / "models.toml"
    monkeypatch.setenv(config.MODELS_FILE_ENV, str(path))
    return path


async def test_an_edit_is_used_by_new_requests(
    start_service: Any,
    bus: Bus,
    models_file: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    save(models_file, models_toml(fake_openai, fake_anthropic))
    gateway = await start_service(ModelGateway, settings={"file_watch_interval": WATCH})
    assert (await bus.request(GENERATE, ask("fast"))).provider == "openai"
    with pytest.raises(RemoteError) as caught:
        await bus.request(EMBED, EmbedRequest(model="embed", texts=["a"]))
    assert caught.value.code == "not_configured"
    before = gateway.router

    save(models_file, models_toml(fake_openai, fake_anthropic, fast="anthropic", extra=EMBED_ALIAS))
    await eventually(lambda: gateway.router is not before, what="the edited models.toml in use")

    reply = await bus.request(GENERATE, ask("fast"))
    assert reply.provider == "anthropic"
    assert fake_anthropic.requests[-1].json["model"] == "anthropic-model"
    streamed = await collect(bus, ask("fast"))
    assert isinstance(streamed[-1], Finish)
    assert streamed[-1].provider == "anthropic"
    embedded = await bus.request(EMBED, EmbedRequest(model="embed", texts=["a"]))
    assert (embedded.alias, embedded.provider) == ("embed", "openai")
    catalog = await bus.request(CATALOG, CatalogRequest())
    assert [(a.alias, a.provider) for a in catalog.aliases] == [
        ("embed", "openai"),
        ("fast", "anthropic"),
    ]
    await eventually(lambda: before.closed, what="the unused old router closed")
    # Usage accounting is the service's: the first configuration's counts are still there.
    registry = gateway.metrics.registry
    for provider in ("openai", "anthropic"):
        labels = {"alias": "fast", "provider": provider, "caller": "test"}
        count = registry.get_sample_value(
            "agentbus_model_requests_total", {**labels, "operation": "generate"}
        )
        assert count == 1, provider


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ("[aliases.broken", "not valid TOML"),
        ('[aliases.lost]\nprovider = "nowhere"\nmodel = "m"\n', "'nowhere'"),
        ('[aliases.secret]\nprovider = "openai"\nmodel = "${NO_SUCH_MODEL}"\n', "NO_SUCH_MODEL"),
    ],
    ids=["toml", "unknown-provider", "missing-variable"],
)
async def test_an_invalid_edit_keeps_the_previous_models(
    start_service: Any,
    bus: Bus,
    models_file: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    edit: str,
    problem: str,
) -> None:
    caplog.set_level(logging.INFO, "agentbus.model_gateway")
    save(models_file, models_toml(fake_openai, fake_anthropic))
    gateway = await start_service(ModelGateway, settings={"file_watch_interval": WATCH})
    before = gateway.router

    save(models_file, models_toml(fake_openai, fake_anthropic, fast="anthropic", extra=edit))

    def reported() -> bool:
        return any(
            r.levelno == logging.ERROR
            and str(models_file) in r.getMessage()
            and problem in r.getMessage()
            and "previous models stay in force" in r.getMessage()
            for r in caplog.records
        )

    await eventually(reported, what="an ERROR naming the file and its problem")
    assert not any("sk-fake-secret" in r.getMessage() for r in caplog.records)
    assert gateway.router is before
    assert not before.closed
    assert (await bus.request(GENERATE, ask("fast"))).provider == "openai"

    # The watch goes on: the fixed file is used.
    save(models_file, models_toml(fake_openai, fake_anthropic, fast="anthropic"))
    await eventually(lambda: gateway.router is not before, what="the fixed models.toml in use")
    assert (await bus.request(GENERATE, ask("fast"))).provider == "anthropic"


async def test_a_running_stream_finishes_on_the_old_models(
    start_service: Any,
    bus: Bus,
    models_file: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    save(models_file, models_toml(fake_openai, fake_anthropic))
    gateway = await start_service(ModelGateway, settings={"file_watch_interval": WATCH})
    before = gateway.router
    hold = threading.Event()
    held = openai_stream(["before ", "the edit"])
    held.hold, held.hold_after = hold, 2  # the role chunk and "before ", then wait
    fake_openai.script(held)

    try:
        async with bus.stream(STREAM, ask("fast"), timeout=10) as chunks:
            first = await anext(chunks)
            assert isinstance(first, StreamChunk)
            assert first.part == TextDelta(text="before ")

            save(models_file, models_toml(fake_openai, fake_anthropic, fast="anthropic"))
            await eventually(lambda: gateway.router is not before, what="the edit in use")
            assert gateway.routers.retired() == [before]
            assert not before.closed, "closed under a running stream"
            assert (await bus.request(GENERATE, ask("fast"))).provider == "anthropic"

            hold.set()
            rest = [chunk.part async for chunk in chunks]
    finally:
        hold.set()

    assert [part.text for part in rest if isinstance(part, TextDelta)] == ["the edit"]
    assert isinstance(rest[-1], Finish)
    assert (rest[-1].alias, rest[-1].provider) == ("fast", "openai")
    await eventually(lambda: before.closed, what="the old router closed after its stream")
    assert gateway.routers.retired() == []
    assert not gateway.router.closed


async def test_a_running_generate_finishes_on_the_old_models(
    start_service: Any,
    bus: Bus,
    models_file: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    save(models_file, models_toml(fake_openai, fake_anthropic))
    gateway = await start_service(ModelGateway, settings={"file_watch_interval": WATCH})
    before = gateway.router
    hold = threading.Event()
    fake_openai.script(replace(openai_text("From before the edit."), hold=hold))

    running = asyncio.create_task(bus.request(GENERATE, ask("fast"), timeout=10))
    try:
        await eventually(lambda: len(fake_openai.requests) == 1, what="the request upstream")
        save(models_file, models_toml(fake_openai, fake_anthropic, fast="anthropic"))
        await eventually(lambda: gateway.router is not before, what="the edit in use")
        assert not before.closed, "closed under a running request"
    finally:
        hold.set()
    reply = await running

    assert (reply.message.text, reply.provider) == ("From before the edit.", "openai")
    await eventually(lambda: before.closed, what="the old router closed after its request")


async def test_a_models_file_named_before_it_exists_is_loaded_when_it_appears(
    start_service: Any,
    bus: Bus,
    models_file: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
) -> None:
    await start_service(ModelGateway, settings={"file_watch_interval": WATCH})
    with pytest.raises(RemoteError) as caught:
        await bus.request(GENERATE, ask("fast"))
    assert caught.value.code == "not_configured"

    save(models_file, models_toml(fake_openai, fake_anthropic))

    async def listed() -> bool:
        catalog = await bus.request(CATALOG, CatalogRequest())
        return [alias.alias for alias in catalog.aliases] == ["fast"]

    await eventually(listed, what="the alias of the new models.toml listed")
    assert (await bus.request(GENERATE, ask("fast"))).provider == "openai"


async def test_without_watching_a_missing_models_file_stops_the_start(
    start_service: Any, models_file: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await start_service(ModelGateway, settings={"file_watch_interval": 0})
