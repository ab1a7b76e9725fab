"""Aliases to providers: capability checks, fallback chains, accounting, errors for the bus.

The router is the gateway without the bus: tests and the service drive the
same object. Each alias's provider comes from :func:`.providers.build.build_provider`
(``RetryingProvider(LimitedProvider(<SDK adapter>))``): retries happen inside one
alias, fallbacks across aliases (here), and a retry's backoff holds no concurrency slot.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from agentbus.framework import ServiceError
from agentbus.interfaces import ErrorCode
from agentbus.interfaces.catalog.model import (
    CatalogReply,
    EmbedReply,
    EmbedRequest,
    Finish,
    GenerateReply,
    GenerateRequest,
    GenerationSettings,
    ImagePart,
    StreamPart,
    Usage,
    UsageUpdate,
    UserMessage,
)
from agentbus.model_gateway.config import (
    MODELS_FILE_ENV,
    NO_MODEL_HINT,
    AliasConfig,
    ModelsConfig,
)
from agentbus.model_gateway.metering import GatewayMetrics
from agentbus.model_gateway.providers.base import (
    Embedding,
    Finished,
    Generation,
    LanguageCall,
    ProviderError,
)
from agentbus.model_gateway.providers.build import build_provider

log = logging.getLogger("agentbus.model_gateway")


class _Answer(Protocol):
    @property
    def usage(self) -> Usage: ...


AnswerT = TypeVar("AnswerT", bound=_Answer)

_CODES = {
    "rate_limited": ErrorCode.LIMITED,
    "server": ErrorCode.UPSTREAM,
    "connection": ErrorCode.UPSTREAM,
    "malformed": ErrorCode.UPSTREAM,
    "incomplete": ErrorCode.UPSTREAM,
    "timeout": ErrorCode.TIMEOUT,
    "bad_request": ErrorCode.INVALID,
    "auth": ErrorCode.NOT_CONFIGURED,
}
_ADVICE = {
    "rate_limited": "retry later, or give the alias a fallback",
    "server": "the provider is failing; retry later, or give the alias a fallback",
    "connection": "check the provider's base_url and that it is running",
    "malformed": "check that the provider's base_url points at a server speaking its protocol",
    "incomplete": "the answer was cut off upstream (a dropped connection or a proxy); retry, "
    "or give the alias a fallback",
    "timeout": "raise the provider's timeout in models.toml, or give the alias a fallback",
    "bad_request": "the provider rejected the request itself; fix the request",
    "auth": "check the provider's api_key in models.toml (or its environment variable)",
}


def needed_capabilities(request: GenerateRequest) -> list[str]:
    needs = []
    if request.tools:
        needs.append("tools")
    if any(
        isinstance(m, UserMessage)
        and not isinstance(m.content, str)
        and any(isinstance(p, ImagePart) for p in m.content)
        for m in request.messages
    ):
        needs.append("vision")
    if request.settings.structured_output is not None:
        needs.append("structured_output")
    return needs


class Router:
    def __init__(self, config: ModelsConfig, metrics: GatewayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.providers = {
            name: build_provider(name, provider, self._count_retry)
            for name, provider in config.providers.items()
        }
        self.closed = False

    async def aclose(self) -> None:
        """Close the providers' HTTP clients; calls still running on them would fail."""
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
        self.closed = True

    def _count_retry(self, provider: str, error: ProviderError, delay: float) -> None:
        self.metrics.retries.labels(provider, error.kind).inc()

    def catalog(self) -> CatalogReply:
        return CatalogReply(aliases=self.config.info(), source=self.config.source)

    # -- choosing aliases --------------------------------------------------------------

    def _alias(self, name: str, capability: str) -> AliasConfig:
        aliases = self.config.aliases
        if not aliases:
            raise ServiceError(
                ErrorCode.NOT_CONFIGURED,
                f"no model is configured, so alias {name!r} cannot answer: {NO_MODEL_HINT}",
                alias=name,
                setting=MODELS_FILE_ENV,
            )
        alias = aliases.get(name)
        if alias is None:
            raise ServiceError(
                ErrorCode.NOT_CONFIGURED,
                f"no model alias {name!r} is configured: add [aliases.{name}] to models.toml "
                f"({MODELS_FILE_ENV}), or use one of: {', '.join(sorted(aliases))}",
                alias=name,
                configured=sorted(aliases),
                setting=MODELS_FILE_ENV,
            )
        if alias.capability != capability:
            raise ServiceError(
                ErrorCode.INVALID,
                f"alias {name!r} is an {alias.capability} model; this request needs the "
                f"{capability!r} capability: use an alias listed by `agentbus models list`",
                alias=name,
                capability=capability,
            )
        return alias

    def _chain(self, name: str, capability: str, needs: list[str]) -> list[tuple[str, AliasConfig]]:
        """The alias and those of its fallbacks able to serve the request, in order."""
        primary = self._alias(name, capability)
        missing = [need for need in needs if not getattr(primary, need)]
        if missing:
            raise ServiceError(
                ErrorCode.INVALID,
                f"alias {name!r} lacks the {missing[0]!r} capability this request needs: use an "
                f"alias with {missing[0]} = true (`agentbus models list`), or set it in "
                f"[aliases.{name}] if the model supports it",
                alias=name,
                capability=missing[0],
                missing=missing,
            )
        chain = [(name, primary)]
        for other in primary.fallback:
            alias = self.config.aliases[other]
            if other != name and all(getattr(alias, need) for need in needs):
                chain.append((other, alias))
        return chain

    @staticmethod
    def _call(alias: AliasConfig, request: GenerateRequest) -> LanguageCall:
        asked, defaults = request.settings, alias.settings
        settings = GenerationSettings(
            temperature=asked.temperature
            if asked.temperature is not None
            else defaults.temperature,
            max_tokens=asked.max_tokens if asked.max_tokens is not None else defaults.max_tokens,
            stop=asked.stop or defaults.stop,
            seed=asked.seed if asked.seed is not None else defaults.seed,
            structured_output=asked.structured_output,
        )
        return LanguageCall(
            model=alias.model,
            messages=list(request.messages),
            tools=list(request.tools),
            tool_choice=request.tool_choice,
            settings=settings,
        )

    def _next(
        self, chain: list[tuple[str, AliasConfig]], index: int, error: ProviderError
    ) -> str | None:
        """The alias to fall back to after ``error`` at ``chain[index]``, if any."""
        if not error.retryable or index + 1 >= len(chain):
            return None
        name, following = chain[index][0], chain[index + 1][0]
        log.warning(
            "alias %s failed (%s: %s); falling back to %s", name, error.kind, error, following
        )
        self.metrics.fallbacks.labels(name, following).inc()
        return following

    @staticmethod
    def _failure(failures: list[tuple[str, str, ProviderError]]) -> ServiceError:
        alias, provider, error = failures[-1]
        tried = ", ".join(f"{a} ({e.kind})" for a, _, e in failures)
        details: dict[str, Any] = {
            "kind": error.kind,
            "alias": alias,
            "provider": provider,
            "attempts": [
                {"alias": a, "provider": p, "kind": e.kind, "status": e.status}
                for a, p, e in failures
            ],
        }
        if error.retry_after is not None:
            details["retry_after"] = error.retry_after
        return ServiceError(
            _CODES[error.kind],
            f"{error} (tried: {tried}); {_ADVICE[error.kind]}",
            **details,
        )

    async def _first_answer(
        self,
        chain: list[tuple[str, AliasConfig]],
        caller: str,
        operation: str,
        call: Callable[[AliasConfig], Awaitable[AnswerT]],
    ) -> tuple[str, AliasConfig, AnswerT]:
        """Try the chain in order, with accounting, until an alias answers; else the failure."""
        failures: list[tuple[str, str, ProviderError]] = []
        for index, (name, alias) in enumerate(chain):
            labels = (name, alias.provider, caller)
            self.metrics.requests.labels(*labels, operation).inc()
            started = time.perf_counter()
            try:
                result = await call(alias)
            except ProviderError as error:
                self.metrics.errors.labels(*labels, error.kind).inc()
                failures.append((name, alias.provider, error))
                if self._next(chain, index, error) is None:
                    raise self._failure(failures) from error
                continue
            self.metrics.succeeded(*labels, operation, time.perf_counter() - started, result.usage)
            return name, alias, result
        raise self._failure(failures)  # an empty chain; _chain never returns one

    # -- operations --------------------------------------------------------------------

    async def generate(self, request: GenerateRequest, caller: str) -> GenerateReply:
        chain = self._chain(request.model, "language", needed_capabilities(request))

        async def call(alias: AliasConfig) -> Generation:
            return await self.providers[alias.provider].generate(self._call(alias, request))

        name, alias, result = await self._first_answer(chain, caller, "generate", call)
        return GenerateReply(
            message=result.message,
            finish_reason=result.finish_reason,
            usage=result.usage,
            model=result.model,
            alias=name,
            provider=alias.provider,
        )

    async def stream(
        self, request: GenerateRequest, caller: str
    ) -> AsyncGenerator[StreamPart, None]:
        chain = self._chain(request.model, "language", needed_capabilities(request))
        failures: list[tuple[str, str, ProviderError]] = []
        for index, (name, alias) in enumerate(chain):
            labels = (name, alias.provider, caller)
            self.metrics.requests.labels(*labels, "stream").inc()
            started = time.perf_counter()
            streamed = False
            try:
                provider_stream = self.providers[alias.provider].stream(self._call(alias, request))
                async with contextlib.aclosing(provider_stream) as parts:
                    async for part in parts:
                        if not streamed:
                            streamed = True
                            self.metrics.first_chunk.labels(*labels).observe(
                                time.perf_counter() - started
                            )
                        if isinstance(part, Finished):
                            self.metrics.succeeded(
                                *labels, "stream", time.perf_counter() - started, part.usage
                            )
                            yield UsageUpdate(usage=part.usage)
                            yield Finish(
                                finish_reason=part.finish_reason,
                                usage=part.usage,
                                model=part.model,
                                alias=name,
                                provider=alias.provider,
                            )
                        else:
                            yield part
                return
            except ProviderError as error:
                self.metrics.errors.labels(*labels, error.kind).inc()
                failures.append((name, alias.provider, error))
                if streamed or self._next(chain, index, error) is None:
                    raise self._failure(failures) from error

    async def embed(self, request: EmbedRequest, caller: str) -> EmbedReply:
        chain = self._chain(request.model, "embedding", [])

        async def call(alias: AliasConfig) -> Embedding:
            provider = self.providers[alias.provider]
            return await provider.embed(alias.model, list(request.texts), request.dimensions)

        name, alias, result = await self._first_answer(chain, caller, "embed", call)
        return EmbedReply(
            vectors=result.vectors,
            dimensions=len(result.vectors[0]) if result.vectors else 0,
            usage=result.usage,
            model=result.model,
            alias=name,
            provider=alias.provider,
        )
