"""Providers: the model APIs behind the gateway's aliases.

Providers own API clients, authentication, base URLs, timeouts, each SDK's wire format
and errors (translated into :class:`~.base.ProviderError`), concurrency limits and
retries within one provider. They do not route: aliases, capabilities, fallbacks across
aliases, accounting and bus errors are :mod:`agentbus.model_gateway.router`'s; nothing
here knows the bus.

- :mod:`.base`: the :class:`~.base.Provider` abstraction, its calls and results, errors
- :mod:`.openai_compatible`: OpenAI and every OpenAI-compatible server (``openai`` SDK)
- :mod:`.anthropic_messages`: Anthropic's Messages API (``anthropic`` SDK)
- :mod:`.translate`: what both adapters share (Retry-After, tool arguments, bad bodies)
- :mod:`.limits_and_retries`: the concurrency limit and the retry wrappers
- :mod:`.build`: :func:`~.build.build_provider`, one configured provider wrapped for use
"""
