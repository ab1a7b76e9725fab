"""Settings from the environment (``AGENTBUS_*``) and TOML files with ``${VAR}`` substitution.

Precedence: explicit arguments, then environment variables, then the TOML file,
then defaults. Secrets are ``SecretStr``: they never show in reprs or logs.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentbus.framework.errors import ConfigError

ENV_PREFIX = "AGENTBUS_"
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Settings(BaseSettings):
    """How a service or the CLI connects and behaves."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    nats_url: str | None = Field(
        default=None,
        description="NATS server URL, or several seed URLs of one cluster separated by commas "
        "(the connection uses all of them). Unset: use the embedded server of `agentbus up`.",
    )
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds_file: Path | None = None
    nats_nkey_file: Path | None = Field(
        default=None,
        description="The identity's nkey seed file (`agentbus auth init` makes them, mode "
        "0600). Unset: <data_dir>/auth/<component>.nk when it exists, and for the CLI the "
        "operator's.",
    )
    identity: str | None = Field(
        default=None,
        description="The identity this connection calls as (the last token of its request "
        "subjects); unset: the service's name, or the seed file's identity.",
    )
    nats_tls_ca: Path | None = Field(
        default=None,
        description="TLS: the CA bundle (PEM) that signed the server's certificate; unset with "
        "TLS on: the system's CAs.",
    )
    nats_tls_cert: Path | None = Field(
        default=None, description="TLS: client certificate (PEM), for servers that verify clients."
    )
    nats_tls_key: Path | None = Field(
        default=None, description="TLS: the client certificate's private key (PEM, unencrypted)."
    )
    nats_tls_server_name: str | None = Field(
        default=None,
        description="TLS: the name the server's certificate must carry, when the URL's host "
        "is another (an IP, a container alias).",
    )
    data_dir: Path = Field(default=Path(".agentbus"), description="Embedded NATS data and state.")
    instance: str | None = Field(default=None, description="Instance id; random when unset.")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Prometheus port; unset: no metrics server."
    )
    metrics_host: str = "127.0.0.1"
    max_payload: int = Field(default=1024 * 1024, gt=0, description="Largest request accepted.")
    max_concurrency: int = Field(default=256, gt=0, description="Requests handled at once.")
    max_queue: int = Field(
        default=1024, ge=0, description="Requests waiting for a slot; more are `overloaded`."
    )
    shutdown_grace: float = Field(default=10.0, ge=0, description="Seconds to finish work.")
    request_timeout: float = Field(default=10.0, gt=0)
    event_max_deliver: int = Field(default=5, gt=0, description="Tries before dead-lettering.")
    jetstream_storage: Literal["file", "memory"] = "file"
    js_replicas: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="Replicas of every stream and KV bucket agentbus declares (an existing one "
        "with fewer is upgraded, never downgraded). Unset: 3 with several NATS URLs, else 1.",
    )
    deploy_component: str | None = Field(
        default=None,
        description="Blue/green: the component this instance is a version of (see deploy/).",
    )
    deploy_color: Literal["blue", "green"] | None = Field(
        default=None,
        description="Blue/green: serve production subjects only while this color is active. "
        "Unset: always serve.",
    )
    deploy_backend: Literal["local", "docker"] = Field(
        default="local",
        description="Blue/green: run new versions as local processes from a git worktree, or "
        "as containers of an image built for the commit.",
    )
    deploy_image: str = Field(
        default="agentbus/agentbus:latest",
        description="docker backend: the runtime image a commit's files are added to.",
    )
    deploy_network: str | None = Field(
        default=None,
        description="docker backend: the Docker network the containers join (the cluster's).",
    )
    deploy_nats_url: str | None = Field(
        default=None,
        description="docker backend: the NATS URL as the containers reach it "
        "(e.g. nats://nats:4222); unset: the deployer's own.",
    )
    file_watch_interval: float = Field(
        default=2.0,
        ge=0,
        description="Seconds between checks of watched configuration files (a service's "
        "models.toml, tools.toml); 0: read them at start only.",
    )
    log_level: str = "INFO"

    @field_validator("nats_tls_ca", "nats_tls_cert", "nats_tls_key")
    @classmethod
    def _tls_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file; point it at a PEM file")
        return path

    @model_validator(mode="after")
    def _tls_cert_and_key_together(self) -> Settings:
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            have, missing = ("cert", "key") if self.nats_tls_key is None else ("key", "cert")
            raise ValueError(
                f"nats_tls_{have} is set but nats_tls_{missing} is not: a client certificate "
                f"needs both; set {ENV_PREFIX}NATS_TLS_{missing.upper()} too, or unset "
                f"{ENV_PREFIX}NATS_TLS_{have.upper()}"
            )
        return self

    @property
    def nats_tls(self) -> bool:
        """Whether the connection to NATS must be TLS: a ``tls://`` URL or any TLS setting."""
        return bool(
            any(url.startswith("tls://") for url in split_urls(self.nats_url or ""))
            or self.nats_tls_ca
            or self.nats_tls_cert
            or self.nats_tls_server_name
        )

    def replicas_for(self, url: str | None) -> int:
        """The replica count of the resources declared through ``url`` (one URL or a list):
        ``js_replicas``, else 3 for a list of several (a cluster), else 1."""
        if self.js_replicas is not None:
            return self.js_replicas
        return 3 if len(split_urls(url or "")) > 1 else 1

    def redacted_nats_url(self) -> str:
        return redact_url(self.nats_url) if self.nats_url else "(embedded)"

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Settings:
        """Settings from ``overrides``, the environment, then ``[agentbus]`` of a TOML file."""
        file_values: dict[str, Any] = {}
        if path is not None:
            section = load_toml(path).get("agentbus", {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: [agentbus] must be a table")
            file_values = {
                key: value
                for key, value in section.items()
                if f"{ENV_PREFIX}{key.upper()}" not in os.environ
            }
        try:
            return cls(**{**file_values, **overrides})
        except ValidationError as exc:
            raise ConfigError(_explain(exc, path)) from None


def _explain(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (set it{where} or as "
        f"{ENV_PREFIX}{str(e['loc'][0]).upper()})"
        if e["loc"]
        else f"{e['msg']}{where}"  # a check across settings names them itself
        for e in exc.errors()
    ]
    return "invalid settings: " + "; ".join(lines)


def split_urls(urls: str) -> list[str]:
    """The URLs of a comma-separated list (one URL gives a list of one), blanks dropped."""
    return [url.strip() for url in urls.split(",") if url.strip()]


def redact_url(url: str) -> str:
    """The URL (or comma-separated URLs) with any password or token replaced by ``***``."""
    if "," in url:
        return ",".join(redact_url(one) for one in split_urls(url))
    parts = urlsplit(url)
    if parts.password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = "***" if parts.password is None else f"{parts.username}:***"
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def load_toml(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse a TOML file and substitute ``${VAR}`` / ``${VAR:-default}`` in string values."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    substituted: dict[str, Any] = substitute(
        data, os.environ if environ is None else environ, source=str(path)
    )
    return substituted


def substitute(value: Any, environ: Mapping[str, str], *, source: str, at: str = "") -> Any:
    """Replace ``${VAR}`` in every string inside ``value``."""
    if isinstance(value, str):
        return _substitute_text(value, environ, source=source, at=at)
    if isinstance(value, dict):
        return {
            k: substitute(v, environ, source=source, at=f"{at}.{k}" if at else k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute(v, environ, source=source, at=f"{at}[{i}]") for i, v in enumerate(value)]
    return value


def _substitute_text(text: str, environ: Mapping[str, str], *, source: str, at: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match[1], match[2]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{source}: {at} uses ${{{name}}} but {name} is not set; export {name} or write "
            f"${{{name}:-default}}"
        )

    return _VAR_RE.sub(replace, text)
