"""Anthropic's Messages API, on the official ``anthropic`` SDK (its retries off)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import anthropic
import httpx

from agentbus.interfaces.catalog.model import (
    AssistantMessage,
    FinishReason,
    ImagePart,
    Message,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from agentbus.model_gateway.config import ProviderConfig
from agentbus.model_gateway.providers.base import (
    Finished,
    Generation,
    LanguageCall,
    Provider,
    ProviderError,
    ProviderPart,
)
from agentbus.model_gateway.providers.translate import cut_off, malformed_response, status_error

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; this applies when nobody set one

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


class AnthropicProvider(Provider):
    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name)
        self.client = anthropic.AsyncAnthropic(
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout,
        )

    async def generate(self, call: LanguageCall) -> Generation:
        with translated(self.name):
            message = await self.client.messages.create(**_params(call))
        with malformed_response(self.name):
            text = "".join(block.text for block in message.content if block.type == "text")
            calls = [
                ToolCall(id=block.id, name=block.name, arguments=dict(block.input))
                for block in message.content
                if block.type == "tool_use"
            ]
            return Generation(
                message=AssistantMessage(text=text, tool_calls=calls),
                finish_reason=_FINISH.get(message.stop_reason or "", "other"),
                usage=Usage(
                    input_tokens=message.usage.input_tokens,
                    output_tokens=message.usage.output_tokens,
                ),
                model=message.model or call.model,
            )

    async def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        finish: FinishReason | None = None
        input_tokens = output_tokens = 0
        model = call.model
        tool_index: dict[int, int] = {}  # content block index -> tool call ordinal
        with translated(self.name):
            events = await self.client.messages.create(**_params(call), stream=True)
            async with events:  # closing it closes the HTTP response: cancellation reaches it
                async for event in events:
                    with malformed_response(self.name):
                        if event.type == "message_start":
                            model = event.message.model or model
                            input_tokens = event.message.usage.input_tokens
                        elif event.type == "content_block_start":
                            block = event.content_block
                            if block.type == "tool_use":
                                tool_index[event.index] = len(tool_index)
                                yield ToolCallDelta(
                                    index=tool_index[event.index], id=block.id, name=block.name
                                )
                        elif event.type == "content_block_delta":
                            delta = event.delta
                            if delta.type == "text_delta":
                                yield TextDelta(text=delta.text)
                            elif delta.type == "input_json_delta":
                                yield ToolCallDelta(
                                    index=tool_index[event.index], arguments=delta.partial_json
                                )
                        elif event.type == "message_delta":
                            finish = _FINISH.get(event.delta.stop_reason or "", "other")
                            output_tokens = event.usage.output_tokens
                            input_tokens = event.usage.input_tokens or input_tokens
        if finish is None:  # the body ended mid-answer: no message_delta with a stop reason
            raise cut_off(self.name)
        yield Finished(
            finish_reason=finish,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model=model,
        )

    async def aclose(self) -> None:
        await self.client.close()


def _params(call: LanguageCall) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in call.messages if isinstance(m, SystemMessage))
    params: dict[str, Any] = {
        "model": call.model,
        "messages": _messages(call.messages),
        "max_tokens": call.settings.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        params["system"] = system
    if call.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in call.tools
        ]
        params["tool_choice"] = _TOOL_CHOICE[call.tool_choice]
    if call.settings.temperature is not None:
        params["temperature"] = min(call.settings.temperature, 1.0)  # Anthropic's range is 0-1
    if call.settings.stop:
        params["stop_sequences"] = call.settings.stop
    return params


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Anthropic's shape: no system turns; tool results are user turns, merged when adjacent."""
    rendered: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, ToolResultMessage):
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
                "is_error": message.is_error,
            }
            last = rendered[-1] if rendered else None
            if last and last["role"] == "user" and last.get("tool_results"):
                last["content"].append(block)
            else:
                rendered.append({"role": "user", "content": [block], "tool_results": True})
            continue
        if isinstance(message, UserMessage):
            content: Any = (
                message.content
                if isinstance(message.content, str)
                else [
                    _image(part.url)
                    if isinstance(part, ImagePart)
                    else {"type": "text", "text": part.text}
                    for part in message.content
                ]
            )
            rendered.append({"role": "user", "content": content})
            continue
        blocks: list[dict[str, Any]] = []
        if message.text:
            blocks.append({"type": "text", "text": message.text})
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in message.tool_calls
        ]
        rendered.append({"role": "assistant", "content": blocks})
    for turn in rendered:
        turn.pop("tool_results", None)
    return rendered


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


@contextlib.contextmanager
def translated(provider: str) -> Iterator[None]:
    """The SDK's (and httpx's, mid-stream) exceptions as :class:`ProviderError`."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise status_error(provider, exc.status_code, exc.message, exc.response) from exc
    except (anthropic.APITimeoutError, httpx.TimeoutException) as exc:
        raise ProviderError("timeout", f"{provider} did not answer in time") from exc
    except (anthropic.APIConnectionError, httpx.TransportError) as exc:
        raise ProviderError("connection", f"cannot reach {provider}: {exc}") from exc
    except anthropic.APIError as exc:  # an `error` event in the middle of a stream
        raise ProviderError("server", f"{provider} failed mid-stream: {exc.message}") from exc
    except ValueError as exc:
        raise ProviderError("malformed", f"{provider} sent a malformed response: {exc}") from exc
