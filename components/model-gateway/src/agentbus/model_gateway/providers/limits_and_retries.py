"""The wrappers every SDK adapter is run inside: a concurrency limit, then retries.

``RetryingProvider(LimitedProvider(<SDK adapter>))`` (see :func:`.build.build_provider`):
a retry's backoff holds no concurrency slot. Streams are retried only before their first
part: once text reached the caller, a retry would repeat it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from agentbus.model_gateway.providers.base import (
    Embedding,
    Generation,
    LanguageCall,
    Provider,
    ProviderError,
    ProviderPart,
    WrapperProvider,
)

log = logging.getLogger("agentbus.model_gateway")


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
