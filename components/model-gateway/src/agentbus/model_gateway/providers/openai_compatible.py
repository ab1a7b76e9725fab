"""OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, OpenRouter).

Built on the official ``openai`` SDK with its own retries off (``max_retries=0``):
retries, fallbacks and limits are the gateway's wrappers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import openai

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
    Embedding,
    Finished,
    Generation,
    LanguageCall,
    Provider,
    ProviderError,
    ProviderPart,
)
from agentbus.model_gateway.providers.translate import (
    cut_off,
    malformed_response,
    parse_arguments,
    status_error,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


class OpenAICompatibleProvider(Provider):
    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name)
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value() if config.api_key else "not-needed",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout,
        )

    async def generate(self, call: LanguageCall) -> Generation:
        with translated(self.name):
            completion = await self.client.chat.completions.create(**_params(call))
        with malformed_response(self.name):
            choice = completion.choices[0]
            message = choice.message
            calls = [
                ToolCall(
                    id=tool.id,
                    name=tool.function.name,
                    arguments=parse_arguments(self.name, tool.function.arguments),
                )
                for tool in message.tool_calls or []
                if tool.type == "function"
            ]
            return Generation(
                message=AssistantMessage(text=message.content or "", tool_calls=calls),
                finish_reason=_FINISH.get(choice.finish_reason or "", "other"),
                usage=_usage(completion.usage),
                model=completion.model or call.model,
            )

    async def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        finish: FinishReason | None = None
        usage = Usage()
        model = call.model
        with translated(self.name):
            chunks = await self.client.chat.completions.create(
                **_params(call), stream=True, stream_options={"include_usage": True}
            )
            async with chunks:  # closing it closes the HTTP response: cancellation reaches it
                async for chunk in chunks:
                    with malformed_response(self.name):
                        model = chunk.model or model
                        if chunk.usage is not None:
                            usage = _usage(chunk.usage)
                        for choice in chunk.choices:
                            delta = choice.delta
                            if delta.content:
                                yield TextDelta(text=delta.content)
                            for tool in delta.tool_calls or []:
                                function = tool.function
                                yield ToolCallDelta(
                                    index=tool.index,
                                    id=tool.id,
                                    name=function.name if function else None,
                                    arguments=(function.arguments or "") if function else "",
                                )
                            if choice.finish_reason:
                                finish = _FINISH.get(choice.finish_reason, "other")
        if finish is None:  # the body ended mid-answer: no finish reason (nor, likely, [DONE])
            raise cut_off(self.name)
        yield Finished(finish_reason=finish, usage=usage, model=model)

    async def embed(self, model: str, texts: list[str], dimensions: int | None) -> Embedding:
        extra: dict[str, Any] = {"dimensions": dimensions} if dimensions else {}
        with translated(self.name):
            result = await self.client.embeddings.create(
                model=model, input=texts, encoding_format="float", **extra
            )
        with malformed_response(self.name):
            vectors = [list(item.embedding) for item in sorted(result.data, key=lambda d: d.index)]
            if len(vectors) != len(texts):
                raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
            return Embedding(
                vectors=vectors,
                usage=Usage(input_tokens=result.usage.prompt_tokens if result.usage else 0),
                model=result.model or model,
            )

    async def aclose(self) -> None:
        await self.client.close()


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0)


def _params(call: LanguageCall) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": call.model,
        "messages": [_message(m) for m in call.messages],
    }
    if call.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in call.tools
        ]
        params["tool_choice"] = call.tool_choice
    settings = call.settings
    if settings.temperature is not None:
        params["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        params["max_tokens"] = settings.max_tokens
    if settings.stop:
        params["stop"] = settings.stop
    if settings.seed is not None:
        params["seed"] = settings.seed
    if settings.structured_output is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": settings.structured_output.name,
                "schema": settings.structured_output.json_schema,
            },
        }
    return params


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": message.content}
    if isinstance(message, UserMessage):
        if isinstance(message.content, str):
            return {"role": "user", "content": message.content}
        return {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": part.url}}
                if isinstance(part, ImagePart)
                else {"type": "text", "text": part.text}
                for part in message.content
            ],
        }
    if isinstance(message, ToolResultMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    rendered: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        rendered["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    return rendered


@contextlib.contextmanager
def translated(provider: str) -> Iterator[None]:
    """The SDK's (and httpx's, mid-stream) exceptions as :class:`ProviderError`."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise status_error(provider, exc.status_code, exc.message, exc.response) from exc
    except (openai.APITimeoutError, httpx.TimeoutException) as exc:
        raise ProviderError("timeout", f"{provider} did not answer in time") from exc
    except (openai.APIConnectionError, httpx.TransportError) as exc:
        raise ProviderError("connection", f"cannot reach {provider}: {exc}") from exc
    except (openai.APIResponseValidationError, ValueError) as exc:
        raise ProviderError("malformed", f"{provider} sent a malformed response: {exc}") from exc
