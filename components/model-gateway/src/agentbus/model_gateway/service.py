"""The ``model-gateway`` service: the model interfaces on the bus, served by the router.

``models.toml`` is watched while the service runs (``file_watch_interval``): a valid
edit swaps in a new router for new requests, while running ones finish on the old
one (see :mod:`.live_routers`); an invalid edit is logged and the previous models stay.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator
from pathlib import Path

from agentbus.framework import ConfigError, MessageContext, Service, handles, streams
from agentbus.interfaces.catalog.model import (
    CATALOG,
    EMBED,
    GENERATE,
    STREAM,
    CatalogReply,
    CatalogRequest,
    EmbedReply,
    EmbedRequest,
    GenerateReply,
    GenerateRequest,
    StreamChunk,
)
from agentbus.model_gateway import config
from agentbus.model_gateway.config import ModelsConfig
from agentbus.model_gateway.live_routers import LiveRouters
from agentbus.model_gateway.metering import GatewayMetrics
from agentbus.model_gateway.router import Router

log = logging.getLogger("agentbus.model_gateway")


def caller(ctx: MessageContext) -> str:
    """The calling identity, for accounting and budgets: the one the NATS server let through
    (the subject's last token), never the ``src`` a sender writes in its header."""
    return ctx.caller


class ModelGateway(Service):
    """Every agent reaches a model through here: aliases, providers, retries, limits, usage."""

    name = "model-gateway"
    version = "0.1.0"

    async def initialize(self) -> None:
        # One set of counters for the service's life: usage accounting spans reloads.
        self.gateway_metrics = GatewayMetrics(self.metrics.registry)
        path = config.models_file()
        if path is not None:
            # Watch before reading, so an edit made while we read is not missed. The first
            # check comes after an interval, by which time ``self.routers`` exists.
            await self.watch_file(path, functools.partial(self._reload, path))
        models = self._first_models(path)
        self.routers = LiveRouters(Router(models, self.gateway_metrics))
        self._announce(models)

    def _first_models(self, path: Path | None) -> ModelsConfig:
        """What :func:`config.load` gives, or nothing yet when the named file is still to come."""
        if path is not None and self.settings.file_watch_interval > 0 and not path.exists():
            log.warning(
                "%s (%s) does not exist yet: no model until it appears, then it is loaded "
                "(check the path if the file should be there)",
                path,
                config.MODELS_FILE_ENV,
            )
            return ModelsConfig(source=f"{path} (does not exist yet)")
        return config.load()

    async def _reload(self, path: Path) -> None:
        """Load the changed file; swap routers if it is valid, else keep the current models."""
        try:
            models = config.from_file(path)
        except ConfigError as exc:
            log.error(
                "%s changed but cannot be used, so the previous models stay in force: %s; "
                "fix the file and save it again",
                path,
                exc,
            )
            return
        if models == self.router.config:
            return  # a comment or formatting edit: keep the providers' open connections
        await self.routers.replace(Router(models, self.gateway_metrics))
        log.info("%s changed: new requests use its models, running ones finish as they began", path)
        self._announce(models)

    @staticmethod
    def _announce(models: ModelsConfig) -> None:
        if models.aliases:
            log.info("model aliases from %s: %s", models.source, ", ".join(models.aliases))
        else:
            log.warning("no model is configured: %s", config.NO_MODEL_HINT)

    @property
    def router(self) -> Router:
        """The router new requests use (those already running keep theirs)."""
        return self.routers.current

    async def shutdown(self) -> None:
        await self.routers.aclose()

    @handles(GENERATE)
    async def generate(self, request: GenerateRequest, ctx: MessageContext) -> GenerateReply:
        with self.routers.use() as router:
            return await router.generate(request, caller(ctx))

    @streams(STREAM)
    async def stream(
        self, request: GenerateRequest, ctx: MessageContext
    ) -> AsyncGenerator[StreamChunk, None]:
        with self.routers.use() as router:
            async with contextlib.aclosing(router.stream(request, caller(ctx))) as parts:
                async for part in parts:
                    yield StreamChunk(part=part)

    @handles(EMBED)
    async def embed(self, request: EmbedRequest, ctx: MessageContext) -> EmbedReply:
        with self.routers.use() as router:
            return await router.embed(request, caller(ctx))

    @handles(CATALOG)
    async def catalog(self, request: CatalogRequest, ctx: MessageContext) -> CatalogReply:
        return self.router.catalog()
