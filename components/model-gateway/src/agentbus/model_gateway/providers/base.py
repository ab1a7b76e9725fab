"""The provider abstraction: what one configured provider does, and how it fails.

::

    Provider (ABC)                 one configured provider: generate, stream, embed
    ├── OpenAICompatibleProvider   official ``openai`` SDK (OpenAI and compatible servers)
    ├── AnthropicProvider          official ``anthropic`` SDK
    └── WrapperProvider            delegates everything to ``inner``
        ├── LimitedProvider        at most N calls in flight      (.limits_and_retries)
        └── RetryingProvider       retries with backoff            (.limits_and_retries)

    ProviderError                  what any provider failure becomes; ``kind`` says which
                                   (rate_limited, server, timeout, connection, incomplete:
                                   retryable; bad_request, auth, malformed: not)
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from agentbus.interfaces.catalog.model import (
    AssistantMessage,
    FinishReason,
    GenerationSettings,
    Message,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    Usage,
)

ErrorKind = Literal[
    "rate_limited",
    "server",
    "timeout",
    "connection",
    "incomplete",
    "bad_request",
    "auth",
    "malformed",
]
"""``incomplete``: a stream that ended before the provider said the answer was finished."""
RETRYABLE: frozenset[str] = frozenset(
    {"rate_limited", "server", "timeout", "connection", "incomplete"}
)


class ProviderError(Exception):
    """A provider call failed; ``kind`` decides retries and fallbacks."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True, slots=True)
class LanguageCall:
    """One language request as a provider sees it: a model name and merged settings."""

    model: str
    messages: list[Message]
    tools: list[ToolDefinition]
    tool_choice: ToolChoice
    settings: GenerationSettings


@dataclass(frozen=True, slots=True)
class Generation:
    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage
    model: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The last part a provider stream yields, only when the provider said the answer is
    finished (a finish or stop reason); a stream that just ends raises ``incomplete``."""

    finish_reason: FinishReason
    usage: Usage
    model: str


ProviderPart = TextDelta | ToolCallDelta | Finished


@dataclass(frozen=True, slots=True)
class Embedding:
    vectors: list[list[float]]
    usage: Usage
    model: str


class Provider(ABC):
    """One configured provider. Subclasses translate their library's errors to ProviderError."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def generate(self, call: LanguageCall) -> Generation:
        """One complete answer."""

    def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        """Text and tool-call deltas, then one :class:`Finished`."""
        raise NotImplementedError(f"{type(self).__name__} cannot stream")

    async def embed(self, model: str, texts: list[str], dimensions: int | None) -> Embedding:
        raise NotImplementedError(f"{type(self).__name__} has no embeddings")

    async def aclose(self) -> None:  # noqa: B027 - optional: most providers hold no resources
        """Release connections."""


class WrapperProvider(Provider):
    """Delegates to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.name)
        self.inner = inner

    async def generate(self, call: LanguageCall) -> Generation:
        return await self.inner.generate(call)

    async def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        async with contextlib.aclosing(self.inner.stream(call)) as parts:
            async for part in parts:
                yield part

    async def embed(self, model: str, texts: list[str], dimensions: int | None) -> Embedding:
        return await self.inner.embed(model, texts, dimensions)

    async def aclose(self) -> None:
        await self.inner.aclose()
