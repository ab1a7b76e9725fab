"""What every command shares: options, settings, the bus, output, errors."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.errors import ConfigError
from agentbus.framework.ids import by_prefix as by_prefix  # for every id-taking command
from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.metadata import Source, new_id
from agentbus.interfaces.registry import Registry

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class Options:
    """Global options, stored on the Typer context."""

    nats_url: str | None = None
    data_dir: Path | None = None
    verbose: bool = False

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        if self.nats_url:
            values["nats_url"] = self.nats_url
        data_dir = self.data_dir or project_data_dir(Path.cwd())
        if data_dir:
            values["data_dir"] = data_dir
        return Settings.load(**values, **overrides)


DATA_DIR_NAME = ".agentbus"


def project_data_dir(start: Path) -> Path | None:
    """The ``.agentbus`` folder of the project ``start`` is in: that of the nearest folder,
    ``start`` or above, holding ``.agentbus/`` or ``agentbus.toml`` (so the CLI finds
    ``nats.url`` and the keys from any sub-folder); None outside any project."""
    for folder in (start, *start.parents):
        if (folder / DATA_DIR_NAME).is_dir() or (folder / "agentbus.toml").is_file():
            return folder / DATA_DIR_NAME
    return None


def options(ctx: typer.Context) -> Options:
    found = ctx.find_object(Options)
    return found if found is not None else Options()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def with_bus(opts: Options, work: Callable[[Bus], Awaitable[T]]) -> T:
    """Connect as component ``cli``, run ``work``, disconnect."""
    settings = opts.settings()
    async with Bus(settings, Source("cli", new_id()[:8])) as bus:
        return await work(bus)


def load_registry(references: list[str] | None = None) -> Registry:
    """agentbus's own interfaces plus ``module:attr`` registries from options or
    ``AGENTBUS_INTERFACES`` (comma-separated)."""
    registry = Registry(REGISTRY)
    extra = list(references or [])
    extra += [r for r in os.environ.get("AGENTBUS_INTERFACES", "").split(",") if r.strip()]
    for reference in extra:
        module_name, _, attribute = reference.strip().partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute or "REGISTRY")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load interfaces from {reference!r}: {exc}") from exc
        if not isinstance(found, Registry):
            raise ConfigError(f"{reference!r} is not an agentbus Registry")
        registry.extend(found)
    return registry


def parse_json(text: str, what: str = "payload") -> Any:
    """JSON from an argument, or from a file when the argument is ``@path``."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"the {what} is not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None


def print_json_lines(rows: Iterable[Any]) -> None:
    """One JSON document per line, unwrapped: for ``--json`` listings that scripts read."""
    for row in rows:
        console.print(json.dumps(row, default=str), markup=False, soft_wrap=True)


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))
