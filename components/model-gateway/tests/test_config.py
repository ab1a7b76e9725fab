"""models.toml and the defaults from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbus.framework import ConfigError
from agentbus.model_gateway import config

MODELS = """
[providers.local]
kind = "openai"
base_url = "${LOCAL_URL:-http://127.0.0.1:11434/v1}"
api_key = "${LOCAL_KEY}"

[aliases.fast]
provider = "local"
model = "llama3.2"
tools = true
fallback = ["slow"]
settings = { temperature = 0.1 }

[aliases.slow]
provider = "local"
model = "llama3.3:70b"
"""


def test_file_substitutes_variables_and_hides_keys(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(MODELS, encoding="utf-8")

    loaded = config.load({"AGENTBUS_MODELS_FILE": str(path), "LOCAL_KEY": "sk-local-123"})

    provider = loaded.providers["local"]
    assert provider.base_url == "http://127.0.0.1:11434/v1"
    assert provider.api_key is not None
    assert provider.api_key.get_secret_value() == "sk-local-123"
    assert "sk-local-123" not in repr(loaded)
    assert loaded.aliases["fast"].fallback == ["slow"]
    assert loaded.aliases["fast"].settings.temperature == 0.1
    assert loaded.source == str(path)


def test_models_toml_in_the_working_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(MODELS, encoding="utf-8")

    loaded = config.load({"LOCAL_KEY": "k"}, cwd=tmp_path)

    assert sorted(loaded.aliases) == ["fast", "slow"]


def test_a_missing_variable_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(MODELS, encoding="utf-8")

    with pytest.raises(ConfigError, match="LOCAL_KEY"):
        config.from_file(path, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[aliases.a]\nprovider = "nope"\nmodel = "m"', "provider 'nope', which is not defined"),
        (
            '[providers.p]\nkind = "openai"\n[aliases.a]\nprovider = "p"\nmodel = "m"\n'
            'fallback = ["b"]',
            "unknown alias 'b'",
        ),
        (
            '[providers.p]\nkind = "anthropic"\n[aliases.a]\nprovider = "p"\nmodel = "m"\n'
            'capability = "embedding"',
            "embeddings need an openai-kind provider",
        ),
        ('[providers.p]\nkind = "gemini"', "providers.p.kind"),
        ('[providers.p]\nkind = "openai"\ntimeuot = 3', "timeuot"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=message):
        config.from_file(path, {})


def test_nothing_configured_is_an_empty_catalog() -> None:
    loaded = config.from_environment({})

    assert loaded.aliases == {}
    assert loaded.source == "(nothing configured)"


def test_openai_base_url_alone_configures_a_default_alias() -> None:
    loaded = config.from_environment(
        {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1", "OPENAI_MODEL": "qwen"}
    )

    assert sorted(loaded.aliases) == ["default", "openai"]
    assert loaded.aliases["default"].model == "qwen"
    assert loaded.providers["openai"].base_url == "http://127.0.0.1:8080/v1"
    assert "embedding" not in loaded.aliases


def test_keys_configure_openai_anthropic_and_embeddings() -> None:
    loaded = config.from_environment({"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2"})

    assert sorted(loaded.aliases) == ["anthropic", "default", "embedding", "openai"]
    assert loaded.aliases["default"].provider == "openai"
    assert loaded.aliases["embedding"].capability == "embedding"
    assert "sk-2" not in repr(loaded)
