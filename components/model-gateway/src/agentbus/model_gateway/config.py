"""``models.toml``: providers, aliases, fallbacks, limits; and defaults from the environment.

::

    [providers.openai]
    kind = "openai"                              # openai | anthropic
    base_url = "${OPENAI_BASE_URL:-https://api.openai.com/v1}"
    api_key = "${OPENAI_API_KEY}"
    max_concurrency = 8                          # requests in flight to this provider
    timeout = 60                                 # seconds, per HTTP read
    retries = 2                                  # on 429, 5xx, timeouts, connection errors
    backoff = 0.5                                # first retry delay; doubles each time
    max_backoff = 20                             # a longer Retry-After means: fall back now

    [aliases.fast]
    provider = "openai"
    model = "gpt-4o-mini"
    tools = true
    structured_output = true
    context_window = 128000
    fallback = ["claude"]
    settings = { temperature = 0.2, max_tokens = 1024 }

    [aliases.embed]
    provider = "openai"
    model = "text-embedding-3-small"
    capability = "embedding"
    dimensions = 1536

Found at ``AGENTBUS_MODELS_FILE`` (default ``models.toml`` in the working
directory). Without a file, :func:`from_environment` builds aliases from
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from agentbus.framework import ConfigError, load_toml
from agentbus.interfaces.catalog.model import AliasInfo
from agentbus.interfaces.validation import explain

MODELS_FILE_ENV = "AGENTBUS_MODELS_FILE"
NO_MODEL_HINT = (
    f"add an [aliases.<name>] section to models.toml ({MODELS_FILE_ENV}), or set "
    "OPENAI_BASE_URL (any OpenAI-compatible server) / OPENAI_API_KEY / ANTHROPIC_API_KEY for the "
    "gateway"
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Closed):
    kind: Literal["openai", "anthropic"] = Field(
        description="Wire protocol: openai (OpenAI and OpenAI-compatible servers) or anthropic."
    )
    base_url: str | None = None
    api_key: SecretStr | None = None
    max_concurrency: int = Field(default=16, gt=0)
    timeout: float = Field(default=60.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=20.0, ge=0)


class AliasSettings(_Closed):
    """Default settings of an alias; a request's own settings win."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None


class AliasConfig(_Closed):
    provider: str
    model: str = Field(min_length=1)
    capability: Literal["language", "embedding"] = "language"
    tools: bool = False
    vision: bool = False
    structured_output: bool = False
    context_window: int | None = Field(default=None, gt=0)
    dimensions: int | None = Field(default=None, gt=0)
    fallback: list[str] = Field(default_factory=list)
    settings: AliasSettings = Field(default_factory=AliasSettings)


class ModelsConfig(_Closed):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    aliases: dict[str, AliasConfig] = Field(default_factory=dict)
    source: str = "(none)"

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        for name, alias in self.aliases.items():
            if alias.provider not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise ValueError(
                    f"alias {name!r} uses provider {alias.provider!r}, which is not defined "
                    f"(add [providers.{alias.provider}]; defined: {known})"
                )
            for other in alias.fallback:
                if other not in self.aliases:
                    raise ValueError(f"alias {name!r} falls back to unknown alias {other!r}")
                if self.aliases[other].capability != alias.capability:
                    raise ValueError(
                        f"alias {name!r} ({alias.capability}) cannot fall back to {other!r} "
                        f"({self.aliases[other].capability})"
                    )
            if alias.structured_output and self.providers[alias.provider].kind != "openai":
                raise ValueError(
                    f"alias {name!r}: structured_output is supported on openai-kind providers only"
                )
            if alias.capability == "embedding" and self.providers[alias.provider].kind != "openai":
                raise ValueError(
                    f"alias {name!r}: embeddings need an openai-kind provider (Anthropic has no "
                    "embeddings API)"
                )
        return self

    def info(self) -> list[AliasInfo]:
        return [
            AliasInfo(
                alias=name,
                capability=alias.capability,
                provider=alias.provider,
                provider_kind=self.providers[alias.provider].kind,
                model=alias.model,
                tools=alias.tools,
                vision=alias.vision,
                structured_output=alias.structured_output,
                context_window=alias.context_window,
                dimensions=alias.dimensions,
                fallback=list(alias.fallback),
            )
            for name, alias in sorted(self.aliases.items())
        ]


def load(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> ModelsConfig:
    """The file named by ``AGENTBUS_MODELS_FILE`` (or ``./models.toml``), else the environment."""
    env = os.environ if environ is None else environ
    path = models_file(env, cwd)
    return from_environment(env) if path is None else from_file(path, env)


def models_file(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """The file :func:`load` reads: the one ``AGENTBUS_MODELS_FILE`` names (present or not),
    else ``./models.toml`` if there is one; ``None`` when the environment is used."""
    env = os.environ if environ is None else environ
    named = env.get(MODELS_FILE_ENV)
    if named:
        return Path(named)
    path = (cwd or Path.cwd()) / "models.toml"
    return path if path.is_file() else None


def from_file(path: Path, environ: Mapping[str, str] | None = None) -> ModelsConfig:
    data = load_toml(path, environ)
    return _validated({**data, "source": str(path)}, str(path))


def from_environment(environ: Mapping[str, str]) -> ModelsConfig:
    """Aliases from well-known variables; an empty config when none is set.

    * ``OPENAI_BASE_URL`` and/or ``OPENAI_API_KEY``: alias ``openai`` (model ``OPENAI_MODEL``,
      default ``gpt-4o-mini``) on that server; with a key and no base URL also ``embedding``
      (``OPENAI_EMBEDDING_MODEL``, default ``text-embedding-3-small``).
    * ``ANTHROPIC_API_KEY``: alias ``anthropic`` (``ANTHROPIC_MODEL``, default
      ``claude-sonnet-4-5``), honouring ``ANTHROPIC_BASE_URL``.
    * ``default``: the first of those, so ``agentbus models ask default "..."`` works.
    """
    providers: dict[str, dict[str, object]] = {}
    aliases: dict[str, dict[str, object]] = {}
    base_url, openai_key = environ.get("OPENAI_BASE_URL"), environ.get("OPENAI_API_KEY")
    if base_url or openai_key:
        providers["openai"] = {
            "kind": "openai",
            "base_url": base_url or None,
            # OpenAI-compatible local servers ignore the key, but the SDK insists on one.
            "api_key": openai_key or "not-needed",
        }
        aliases["openai"] = {
            "provider": "openai",
            "model": environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            "tools": True,
            "vision": not base_url,
            "structured_output": True,
        }
        if (openai_key and not base_url) or environ.get("OPENAI_EMBEDDING_MODEL"):
            aliases["embedding"] = {
                "provider": "openai",
                "model": environ.get("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small"),
                "capability": "embedding",
            }
    if anthropic_key := environ.get("ANTHROPIC_API_KEY"):
        providers["anthropic"] = {
            "kind": "anthropic",
            "base_url": environ.get("ANTHROPIC_BASE_URL") or None,
            "api_key": anthropic_key,
        }
        aliases["anthropic"] = {
            "provider": "anthropic",
            "model": environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"),
            "tools": True,
            "vision": True,
        }
    for first in ("openai", "anthropic"):
        if first in aliases:
            aliases["default"] = dict(aliases[first])
            break
    variables = [
        v for v in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY") if v in environ
    ]
    source = f"environment ({', '.join(variables)})" if variables else "(nothing configured)"
    return _validated({"providers": providers, "aliases": aliases, "source": source}, source)


def _validated(data: dict[str, object], where: str) -> ModelsConfig:
    try:
        return ModelsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {explain(exc)}") from None
