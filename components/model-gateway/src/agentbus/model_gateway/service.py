"""The ``model-gateway`` service: the model interfaces on the bus, served by the router."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

from agentbus.framework import MessageContext, Service, handles, streams
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
from agentbus.model_gateway.metering import GatewayMetrics
from agentbus.model_gateway.router import Router

log = logging.getLogger("agentbus.model_gateway")


def caller(ctx: MessageContext) -> str:
    """The calling component, for accounting (``unknown`` for plain NATS clients)."""
    return ctx.metadata.source.component


class ModelGateway(Service):
    """Every agent reaches a model through here: aliases, providers, retries, limits, usage."""

    name = "model-gateway"
    version = "0.1.0"

    async def initialize(self) -> None:
        self.models = config.load()
        self.router = Router(self.models, GatewayMetrics(self.metrics.registry))
        if self.models.aliases:
            log.info(
                "model aliases from %s: %s", self.models.source, ", ".join(self.models.aliases)
            )
        else:
            log.warning("no model is configured: %s", config.NO_MODEL_HINT)

    async def shutdown(self) -> None:
        await self.router.aclose()

    @handles(GENERATE)
    async def generate(self, request: GenerateRequest, ctx: MessageContext) -> GenerateReply:
        return await self.router.generate(request, caller(ctx))

    @streams(STREAM)
    async def stream(
        self, request: GenerateRequest, ctx: MessageContext
    ) -> AsyncGenerator[StreamChunk, None]:
        async for part in self.router.stream(request, caller(ctx)):
            yield StreamChunk(part=part)

    @handles(EMBED)
    async def embed(self, request: EmbedRequest, ctx: MessageContext) -> EmbedReply:
        return await self.router.embed(request, caller(ctx))

    @handles(CATALOG)
    async def catalog(self, request: CatalogRequest, ctx: MessageContext) -> CatalogReply:
        return self.router.catalog()
