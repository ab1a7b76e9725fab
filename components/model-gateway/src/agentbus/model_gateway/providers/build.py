"""One alias's provider as the router calls it: the SDK adapter its ``kind`` names, inside
a concurrency limit, inside retries (``RetryingProvider(LimitedProvider(<adapter>))``)."""

from __future__ import annotations

from agentbus.model_gateway.config import ProviderConfig
from agentbus.model_gateway.providers.anthropic_messages import AnthropicProvider
from agentbus.model_gateway.providers.base import Provider
from agentbus.model_gateway.providers.limits_and_retries import (
    LimitedProvider,
    OnRetry,
    RetryingProvider,
    RetryPolicy,
)
from agentbus.model_gateway.providers.openai_compatible import OpenAICompatibleProvider


def build_provider(name: str, config: ProviderConfig, on_retry: OnRetry | None = None) -> Provider:
    """The provider ``[providers.<name>]`` configures; ``on_retry`` hears each retry (metrics)."""
    adapter: Provider = (
        OpenAICompatibleProvider(name, config)
        if config.kind == "openai"
        else AnthropicProvider(name, config)
    )
    policy = RetryPolicy(config.retries, config.backoff, config.max_backoff, on_retry)
    return RetryingProvider(LimitedProvider(adapter, config.max_concurrency), policy)
