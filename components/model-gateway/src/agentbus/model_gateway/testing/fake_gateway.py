"""A stand-in for the whole model gateway on the bus, for callers' tests and benchmarks.

:class:`FakeModelGateway` answers ``model.language.generate`` with a fixed text after a
latency and ``model.catalog`` with one alias; it speaks to no provider. Run it as a
process with ``agentbus serve agentbus.model_gateway.testing:FakeModelGateway``: the answer
and latency then come from ``AGENTBUS_FAKE_MODEL_ANSWER`` / ``AGENTBUS_FAKE_MODEL_LATENCY``.
(To test the real gateway against scripted providers, use :class:`~.openai_fake.FakeOpenAI`
or :class:`~.scripted_model.FakeModel` instead.)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agentbus.framework import ServiceError, Settings
from agentbus.framework.testing import MockService
from agentbus.interfaces.catalog.model import (
    CATALOG,
    GENERATE,
    AliasInfo,
    AssistantMessage,
    CatalogReply,
    CatalogRequest,
    GenerateReply,
    GenerateRequest,
    Usage,
)
from agentbus.interfaces.error_reply import ErrorCode

ANSWER_ENV = "AGENTBUS_FAKE_MODEL_ANSWER"
LATENCY_ENV = "AGENTBUS_FAKE_MODEL_LATENCY"
DEFAULT_ANSWER = '{"action": "act", "reason": "the fake model always acts"}'


class FakeModelGateway(MockService):
    """Serves ``model.language.generate`` with ``answer`` after ``latency`` seconds, and
    ``model.catalog`` with one alias (``alias``, model ``fake-1``).

    ``not_configured=True`` plays a gateway without any model (a ``not_configured`` error).
    ``answer`` may be changed while it runs; ``requests`` are the generate requests so far.
    """

    name = "fake-model-gateway"
    version = "0.1.0"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        answer: str | None = None,
        latency: float | None = None,
        alias: str = "smart",
        not_configured: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__({GENERATE: self._generate, CATALOG: self._catalog}, settings, **kwargs)
        self.answer: str | None = answer or os.environ.get(ANSWER_ENV, DEFAULT_ANSWER)
        if not_configured:
            self.answer = None
        self.latency = latency if latency is not None else float(os.environ.get(LATENCY_ENV, "0"))
        self.alias = alias

    @property
    def requests(self) -> list[GenerateRequest]:
        """The generate requests received so far, oldest first."""
        return [r for r in self.received(GENERATE) if isinstance(r, GenerateRequest)]

    async def _generate(self, request: GenerateRequest) -> GenerateReply:
        await asyncio.sleep(self.latency)
        if self.answer is None:
            raise ServiceError(
                ErrorCode.NOT_CONFIGURED, "no model is configured: set OPENAI_API_KEY"
            )
        return GenerateReply(
            message=AssistantMessage(text=self.answer),
            finish_reason="stop",
            usage=Usage(input_tokens=1, output_tokens=1),
            model="fake-1",
            alias=request.model,
            provider="fake",
        )

    def _catalog(self, request: CatalogRequest) -> CatalogReply:
        alias = AliasInfo(
            alias=self.alias,
            capability="language",
            provider="fake",
            provider_kind="fake",
            model="fake-1",
            tools=True,
        )
        return CatalogReply(aliases=[alias], source="fake")
