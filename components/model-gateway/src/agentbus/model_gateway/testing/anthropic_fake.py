"""A fake Anthropic: the Messages API (JSON and SSE events), on loopback HTTP.

The builders (``anthropic_message``, ``anthropic_stream``, ``anthropic_error``) make the
:class:`~.http_fake.Scripted` answers a test queues; unscripted requests get "Hello world".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentbus.model_gateway.testing.http_fake import FakeServer, Received, Scripted, sse


def anthropic_message(
    text: str = "",
    *,
    tool_uses: Iterable[tuple[str, str, dict[str, Any]]] = (),
    stop: str | None = None,
    model: str = "fake-claude",
    usage: tuple[int, int] = (12, 7),
) -> Scripted:
    """A Messages API body; ``tool_uses`` are ``(id, name, input)``."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    uses = [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in tool_uses]
    return Scripted(
        json={
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content + uses,
            "stop_reason": stop or ("tool_use" if uses else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }
    )


def anthropic_stream(
    texts: Iterable[str] = ("Hello", " world"),
    *,
    tool_uses: Iterable[tuple[str, str, list[str]]] = (),
    model: str = "fake-claude",
    usage: tuple[int, int] = (12, 7),
    event_delay: float = 0.0,
    cut_after: int | None = None,
) -> Scripted:
    """Messages API stream events; ``tool_uses`` are ``(id, name, partial JSON pieces)``.
    ``cut_after``: the response ends after that many events (message_start, a text block's
    start, then one per text)."""
    events = [
        sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage[0], "output_tokens": 1},
                },
            },
            "message_start",
        )
    ]
    index = 0
    texts = list(texts)
    if texts:
        events.append(
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
        )
        events += [
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            )
            for text in texts
        ]
        events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        index = 1
    uses = list(tool_uses)
    for offset, (use_id, name, pieces) in enumerate(uses):
        block = index + offset
        events.append(
            sse(
                {
                    "type": "content_block_start",
                    "index": block,
                    "content_block": {"type": "tool_use", "id": use_id, "name": name, "input": {}},
                },
                "content_block_start",
            )
        )
        events += [
            sse(
                {
                    "type": "content_block_delta",
                    "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                },
                "content_block_delta",
            )
            for piece in pieces
        ]
        events.append(sse({"type": "content_block_stop", "index": block}, "content_block_stop"))
    events.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if uses else "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
            "message_delta",
        )
    )
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return Scripted(events=events, event_delay=event_delay, cut_after=cut_after)


def anthropic_error(
    status: int, message: str = "scripted failure", *, retry_after: float | None = None
) -> Scripted:
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    body = {"type": "error", "error": {"type": "fake_error", "message": message}}
    return Scripted(status=status, json=body, headers=headers)


def _anthropic_default(received: Received) -> Scripted:
    if (received.json or {}).get("stream"):
        return anthropic_stream()
    return anthropic_message("Hello world")


class FakeAnthropic(FakeServer):
    """Anthropic's Messages API (JSON and SSE events); the SDK's base URL is the root."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__(_anthropic_default)

    @property
    def base_url(self) -> str:
        return self.url
