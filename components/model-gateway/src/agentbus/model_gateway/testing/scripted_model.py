"""A fake OpenAI-compatible provider whose answers come from a *brain*.

A brain is a function from the request the provider received to its answer. Brains decide
from the conversation (not from a queue of replies), so concurrent and replayed runs get
consistent answers::

    def read_then_report(received: Received) -> Scripted:
        if not tool_results(received):
            return answer(received, calls=[("c1", "read_file", {"path": "a.txt"})])
        return answer(received, "done")

    with FakeModel() as model:
        model.brain = read_then_report
        ...  # point a models.toml provider's base_url at model.base_url
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentbus.model_gateway.testing.http_fake import FakeServer, Received, Scripted
from agentbus.model_gateway.testing.openai_fake import openai_completion, openai_stream

Brain = Callable[[Received], Scripted]


def answer(
    received: Received,
    text: str = "",
    calls: list[tuple[str, str, dict[str, Any]]] | None = None,
    *,
    delay: float = 0.0,
    usage: tuple[int, int] = (12, 7),
) -> Scripted:
    """Text and/or tool calls ``(id, model tool name, arguments)``, streamed if asked."""
    calls = calls or []
    if (received.json or {}).get("stream"):
        pieces = [(i, n, [json.dumps(a)]) for i, n, a in calls]
        reply = openai_stream([text] if text else [], tool_calls=pieces, usage=usage)
    else:
        reply = Scripted(json=openai_completion(text, tool_calls=calls, usage=usage))
    reply.delay = delay
    return reply


def messages(received: Received) -> list[dict[str, Any]]:
    """The chat messages of a received request, as the provider got them."""
    return list((received.json or {}).get("messages", []))


def tool_results(received: Received) -> list[dict[str, Any]]:
    """The ``tool`` messages of a received request: the results of earlier tool calls."""
    return [m for m in messages(received) if m.get("role") == "tool"]


def first_user(received: Received) -> str:
    """The text of the first user message (which run or task this request belongs to)."""
    return next(str(m.get("content")) for m in messages(received) if m.get("role") == "user")


class FakeModel(FakeServer):
    """A fake OpenAI-compatible provider whose answers come from a replaceable brain."""

    __test__ = False

    def __init__(self) -> None:
        self.brain: Brain = lambda received: answer(received, "Hello world")
        super().__init__(lambda received: self.brain(received))

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def chat_requests(self) -> list[Received]:
        return [r for r in list(self.requests) if r.path.endswith("/chat/completions")]
