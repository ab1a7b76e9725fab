"""Settings (environment, TOML with ``${VAR}``) and live configuration through the KV bucket."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from framework_helpers import request_json, unique

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings, load_toml, redact_url, substitute
from agentbus.framework.errors import ConfigError
from agentbus.framework.jetstream import CONFIG_BUCKET
from agentbus.framework.service import Service
from agentbus.framework.testing import eventually
from agentbus.framework.testing.plugin import StartService

# -- settings ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("AGENTBUS_"):
            monkeypatch.delenv(key)
    return monkeypatch


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings.load()

    assert settings.nats_url is None
    assert settings.max_payload == 1024 * 1024
    assert settings.event_max_deliver == 5
    assert settings.redacted_nats_url() == "(embedded)"


def test_environment_is_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AGENTBUS_MAX_PAYLOAD", "123")
    clean_env.setenv("AGENTBUS_NATS_URL", "nats://example:4222")

    settings = Settings.load()

    assert settings.max_payload == 123
    assert settings.nats_url == "nats://example:4222"


def test_toml_file_with_substitution_and_precedence(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "agentbus.toml",
        "[agentbus]\n"
        'nats_url = "nats://${NATS_HOST:-localhost}:4222"\n'
        "max_concurrency = 8\n"
        "max_payload = 1000\n"
        'log_level = "${LEVEL}"\n',
    )
    clean_env.setenv("LEVEL", "DEBUG")
    clean_env.setenv("AGENTBUS_MAX_PAYLOAD", "2000")

    settings = Settings.load(path, max_concurrency=16)

    assert settings.nats_url == "nats://localhost:4222"  # the ${VAR:-default}
    assert settings.log_level == "DEBUG"  # the ${VAR}
    assert settings.max_payload == 2000  # the environment beats the file
    assert settings.max_concurrency == 16  # an explicit argument beats both


def test_missing_variable_names_it_and_the_place(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "a.toml", '[agentbus]\nnats_token = "${SECRET_TOKEN}"\n')

    with pytest.raises(ConfigError) as caught:
        Settings.load(path)

    message = str(caught.value)
    assert "SECRET_TOKEN" in message
    assert str(path) in message
    assert "agentbus.nats_token" in message


def test_invalid_value_says_where_to_fix_it(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "a.toml", "[agentbus]\nmax_payload = 0\n")

    with pytest.raises(ConfigError) as caught:
        Settings.load(path)

    assert "max_payload" in str(caught.value)
    assert "AGENTBUS_MAX_PAYLOAD" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("[agentbus]\nno_such_setting = 1\n", "no_such_setting", id="unknown-key"),
        pytest.param("agentbus = 3\n", "must be a table", id="not-a-table"),
        pytest.param("[agentbus\n", "not valid TOML", id="bad-toml"),
    ],
)
def test_bad_files_are_config_errors(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.load(write(tmp_path / "a.toml", text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "nope.toml")


def test_substitution_reaches_nested_values() -> None:
    data: dict[str, Any] = {"a": {"b": ["x-${V}", 3, "${W:-w}"]}, "c": "plain"}

    assert substitute(data, {"V": "v"}, source="s") == {"a": {"b": ["x-v", 3, "w"]}, "c": "plain"}
    with pytest.raises(ConfigError, match=r"a\.b\[0\] uses \$\{V\}"):
        substitute(data, {}, source="s")


def test_an_empty_default_is_an_empty_string_not_an_error() -> None:
    """``${AGENTBUS_TOOLS_POLICY:-}`` (the repository's agentbus.toml): unset gives ""."""
    assert substitute({"v": "${UNSET_HERE:-}"}, {}, source="s") == {"v": ""}
    assert substitute({"v": "${SET_HERE:-}"}, {"SET_HERE": "x"}, source="s") == {"v": "x"}


def test_secrets_never_show(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(nats_password="hunter2", nats_token="tok-123", nats_user="me")

    assert "hunter2" not in repr(settings)
    assert "tok-123" not in str(settings)
    assert settings.nats_password is not None
    assert settings.nats_password.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://localhost:4222", "nats://localhost:4222"),
        ("nats://me:secret@host:4222", "nats://me:***@host:4222"),
        ("nats://token@host:4222", "nats://***@host:4222"),
        ("tls://me:secret@host", "tls://me:***@host"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_settings_are_frozen() -> None:
    settings = Settings(nats_url="nats://x:1")
    with pytest.raises(ValueError, match="frozen"):
        settings.max_payload = 3  # type: ignore[misc]


# -- live configuration through the agentbus_config bucket --------------------------------------


def configurable() -> type[Service]:
    chosen = unique("configured")

    class Configured(Service):
        name = chosen

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.changes: list[dict[str, Any]] = []

        async def on_config_change(self, config: dict[str, Any]) -> None:
            if config.get("reject"):
                raise ValueError("I do not like this config")
            self.changes.append(config)

    return Configured


async def put(bus: Bus, key: str, value: bytes) -> None:
    kv = await bus.js.key_value(CONFIG_BUCKET)
    await kv.put(key, value)


def changes(service: Service) -> list[dict[str, Any]]:
    return service.changes  # type: ignore[attr-defined, no-any-return]


async def test_a_put_reaches_on_config_change(start_service: StartService, bus: Bus) -> None:
    service = await start_service(configurable())
    assert service.config == {}

    await put(bus, service.name, b'{"model": "small", "temperature": 0.2}')

    await eventually(lambda: service.config == {"model": "small", "temperature": 0.2})
    assert changes(service) == [{"model": "small", "temperature": 0.2}]

    await put(bus, service.name, b'{"model": "large"}')

    await eventually(lambda: service.config == {"model": "large"})
    assert len(changes(service)) == 2


async def test_config_present_at_start_is_applied(start_service: StartService, bus: Bus) -> None:
    cls = configurable()
    await put(bus, cls.name, b'{"ready": true}')

    service = await start_service(cls)

    assert service.config == {"ready": True}
    assert changes(service) == [{"ready": True}]
    await asyncio.sleep(0.2)
    assert changes(service) == [{"ready": True}], "the watcher must not apply it a second time"


async def test_invalid_config_is_ignored_and_the_service_keeps_running(
    start_service: StartService, bus: Bus
) -> None:
    service = await start_service(configurable())
    await put(bus, service.name, b'{"good": 1}')
    await eventually(lambda: service.config == {"good": 1})

    await put(bus, service.name, b"{not json")
    await put(bus, service.name, b"[1, 2, 3]")
    await put(bus, service.name, b'{"reject": true}')
    await put(bus, service.name, b'{"good": 2}')

    await eventually(lambda: service.config == {"good": 2}, what="the next valid config applied")
    assert changes(service) == [{"good": 1}, {"good": 2}]
    ping = await request_json(bus, f"$SRV.PING.{service.name}")
    assert ping["id"] == service.instance


async def test_same_config_again_is_not_a_change(start_service: StartService, bus: Bus) -> None:
    service = await start_service(configurable())
    await put(bus, service.name, b'{"a": 1}')
    await eventually(lambda: service.config == {"a": 1})

    await put(bus, service.name, b'{ "a" : 1 }')
    await put(bus, service.name, b'{"a": 3}')

    await eventually(lambda: service.config == {"a": 3})
    assert changes(service) == [{"a": 1}, {"a": 3}]


async def test_other_services_keys_are_not_seen(start_service: StartService, bus: Bus) -> None:
    one = await start_service(configurable())
    two = await start_service(configurable())

    await put(bus, two.name, b'{"for": "two"}')
    await put(bus, one.name, b'{"for": "one"}')

    await eventually(lambda: one.config == {"for": "one"} and two.config == {"for": "two"})
    assert changes(one) == [{"for": "one"}]


def test_a_cluster_with_an_external_nats_logs_its_url_without_the_password(tmp_path: Path) -> None:
    from agentbus.framework.supervisor import ClusterFile, NatsSection, Supervisor

    lines: list[str] = []
    cluster = ClusterFile(nats=NatsSection(url="nats://svc:hunter2@nats.example:4222"))
    supervisor = Supervisor(cluster, tmp_path, log=lines.append)

    supervisor.start()  # no services: nothing is spawned, nothing connects
    supervisor.stop()

    assert "using NATS at nats://svc:***@nats.example:4222" in lines
    assert not any("hunter2" in line for line in lines)
