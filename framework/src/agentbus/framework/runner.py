"""Run one service as a process: signals, graceful stop, exit codes.

SIGTERM or SIGINT stops intake and lets in-flight work finish within
``shutdown_grace``; a second signal cancels what is left at once.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from typing import Any

from agentbus.framework.config import Settings
from agentbus.framework.errors import ConfigError
from agentbus.framework.service import Service

log = logging.getLogger("agentbus.runner")


def load_service(target: str) -> type[Service]:
    """Import ``package.module:ClassName`` and check that it is a :class:`Service`."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"service target {target!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for service {target!r}: {exc}") from exc
    found: Any = getattr(module, attribute, None)
    if not (isinstance(found, type) and issubclass(found, Service)):
        raise ConfigError(f"{target!r} is not an agentbus Service subclass")
    return found


async def serve(service: Service, stop: asyncio.Event | None = None) -> None:
    """Run ``service`` until ``stop`` is set or the process gets SIGTERM / SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info(
                "%s: %s received, finishing in-flight work",
                service.name,
                signal.Signals(signum).name,
            )
            stop.set()
        else:
            log.warning("%s: second signal, cancelling in-flight work", service.name)
            service.cancel_in_flight()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with service:
            await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(target: str | type[Service], settings: Settings | None = None) -> None:
    """Load and serve a service until it is signalled to stop."""
    cls = load_service(target) if isinstance(target, str) else target
    asyncio.run(serve(cls(settings)))
