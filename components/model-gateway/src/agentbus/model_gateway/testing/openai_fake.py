"""A fake OpenAI: chat completions (JSON and SSE chunks) and embeddings, on loopback HTTP.

The builders (``openai_text``, ``openai_stream``, ...) make the :class:`~.http_fake.Scripted`
answers a test queues with ``fake.script(...)``; unscripted requests get "Hello world"
(streamed as two deltas) and embeddings of dimension 4.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from agentbus.model_gateway.testing.http_fake import FakeServer, Received, Scripted, sse


def openai_completion(
    text: str = "",
    *,
    tool_calls: Iterable[tuple[str, str, dict[str, Any]]] = (),
    finish: str | None = None,
    model: str = "fake-gpt",
    usage: tuple[int, int] = (12, 7),
) -> dict[str, Any]:
    """A chat.completion body; ``tool_calls`` are ``(id, name, arguments)``."""
    calls = [
        {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, n, a in tool_calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def openai_text(text: str, **options: Any) -> Scripted:
    return Scripted(json=openai_completion(text, **options))


def openai_stream(
    texts: Iterable[str] = ("Hello", " world"),
    *,
    tool_calls: Iterable[tuple[str, str, list[str]]] = (),
    model: str = "fake-gpt",
    usage: tuple[int, int] = (12, 7),
    event_delay: float = 0.0,
    cut_after: int | None = None,
) -> Scripted:
    """An SSE chat.completion.chunk stream; ``tool_calls`` are ``(id, name, argument pieces)``.
    ``cut_after``: the response ends after that many events (the first is the role chunk)."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": text}) for text in texts]
    calls = list(tool_calls)
    for index, (call_id, name, pieces) in enumerate(calls):
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces
        ]
    events.append(chunk({}, "tool_calls" if calls else "stop"))
    events.append(
        sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                },
            }
        )
    )
    events.append(sse("[DONE]"))
    return Scripted(events=events, event_delay=event_delay, cut_after=cut_after)


def openai_embeddings(vectors: list[list[float]], model: str = "fake-embed") -> Scripted:
    return Scripted(
        json={
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)},
        }
    )


def openai_error(
    status: int, message: str = "scripted failure", *, retry_after: float | None = None
) -> Scripted:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    body = {"error": {"message": message, "type": "fake_error", "code": str(status)}}
    return Scripted(status=status, json=body, headers=headers)


def _openai_default(received: Received) -> Scripted:
    body = received.json or {}
    if received.path.endswith("/embeddings"):
        inputs = body.get("input", [])
        return openai_embeddings([[0.5, 0.25, 0.125, float(i)] for i in range(len(inputs))])
    if body.get("stream"):
        return openai_stream()
    return openai_text("Hello world")


class FakeOpenAI(FakeServer):
    """OpenAI's chat completions (JSON and SSE) and embeddings; the SDK's base URL is ``/v1``."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__(_openai_default)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"
