"""The example service in docs/ARCHITECTURE.md is the file under examples/, and it works."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from cli_helpers import ROOT

from agentbus.framework import Bus, RemoteError

sys.path.insert(0, str(ROOT / "examples" / "hello"))
import hello_service as hello


def test_architecture_doc_shows_the_example_verbatim() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    source = (ROOT / "examples" / "hello" / "hello_service.py").read_text(encoding="utf-8")
    assert source in blocks


async def test_greets_and_hears_its_own_events(start_service: Any, bus: Bus) -> None:
    service = await start_service(hello.HelloService)
    reply = await bus.request(hello.GREET, hello.GreetRequest(name="Ada"))
    assert reply.greeting == "Hello, Ada!"
    assert reply.served_by == service.instance
    for _ in range(100):
        if "Ada" in service.heard:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert "Ada" in service.heard


async def test_refuses_nobody_with_a_structured_error(start_service: Any, bus: Bus) -> None:
    await start_service(hello.HelloService)
    with pytest.raises(RemoteError) as caught:
        await bus.request(hello.GREET, hello.GreetRequest(name="nobody"))
    assert caught.value.code == "invalid"
    assert "give a name" in caught.value.reply.message
