"""The provider abstraction, its errors, and the wrappers that add limits and retries.

::

    Provider (ABC)                 one configured provider: generate, stream, embed
    ├── OpenAIProvider             official ``openai`` SDK (OpenAI and OpenAI-compatible servers)
    ├── AnthropicProvider          official ``anthropic`` SDK
    └── WrapperProvider            delegates everything to ``inner``
        ├── LimitedProvider        at most N calls in flight (per provider, across aliases)
        └── RetryingProvider       retries 429 / 5xx / timeouts / connection errors with
                                   exponential backoff, honouring Retry-After

    ProviderError                  what any provider failure becomes; ``kind`` says which
                                   (rate_limited, server, timeout, connection: retryable;
                                   bad_request, auth, malformed: not)

Streams are retried only before their first part: once text reached the
caller, a retry would repeat it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
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

log = logging.getLogger("agentbus.model_gateway")

ErrorKind = Literal[
    "rate_limited", "server", "timeout", "connection", "bad_request", "auth", "malformed"
]
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server", "timeout", "connection"})


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
    """The last part a provider stream yields."""

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


class LimitedProvider(WrapperProvider):
    """At most ``limit`` calls in flight; a stream holds its slot until it ends."""

    def __init__(self, inner: Provider, limit: int) -> None:
        super().__init__(inner)
        self._slots = asyncio.Semaphore(limit)

    async def generate(self, call: LanguageCall) -> Generation:
        async with self._slots:
            return await self.inner.generate(call)

    async def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        async with self._slots, contextlib.aclosing(self.inner.stream(call)) as parts:
            async for part in parts:
                yield part

    async def embed(self, model: str, texts: list[str], dimensions: int | None) -> Embedding:
        async with self._slots:
            return await self.inner.embed(model, texts, dimensions)


OnRetry = Callable[[str, ProviderError, float], None]
"""``on_retry(provider, error, delay)``: called before each retry's wait."""


@dataclass
class RetryPolicy:
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 20.0
    on_retry: OnRetry | None = field(default=None, repr=False)

    def delay(self, error: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or ``None``: give up now."""
        if not error.retryable or attempt >= self.retries:
            return None
        if error.retry_after is not None:
            # The provider said when; waiting longer than we would ever back off means the
            # caller is better served by the next alias in the fallback chain.
            return error.retry_after if error.retry_after <= self.max_backoff else None
        exponential: float = min(self.backoff * 2**attempt, self.max_backoff)
        return exponential * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not crypto


class RetryingProvider(WrapperProvider):
    """Retries retryable failures (streams: only before their first part)."""

    def __init__(self, inner: Provider, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    async def _wait(self, error: ProviderError, attempt: int) -> None:
        delay = self.policy.delay(error, attempt)
        if delay is None:
            raise error
        log.info("%s: %s (%s); retry %d in %.2fs", self.name, error.kind, error, attempt + 1, delay)
        if self.policy.on_retry is not None:
            self.policy.on_retry(self.name, error, delay)
        await asyncio.sleep(delay)

    async def generate(self, call: LanguageCall) -> Generation:
        attempt = 0
        while True:
            try:
                return await self.inner.generate(call)
            except ProviderError as error:
                await self._wait(error, attempt)
                attempt += 1

    async def stream(self, call: LanguageCall) -> AsyncGenerator[ProviderPart, None]:
        attempt = 0
        while True:
            started = False
            try:
                async with contextlib.aclosing(self.inner.stream(call)) as parts:
                    async for part in parts:
                        started = True
                        yield part
                return
            except ProviderError as error:
                if started:
                    raise
                await self._wait(error, attempt)
                attempt += 1

    async def embed(self, model: str, texts: list[str], dimensions: int | None) -> Embedding:
        attempt = 0
        while True:
            try:
                return await self.inner.embed(model, texts, dimensions)
            except ProviderError as error:
                await self._wait(error, attempt)
                attempt += 1
