"""A service that answers interfaces from plain functions: the bus-side fake of anything.

::

    def generate(request: GenerateRequest) -> GenerateReply:
        return GenerateReply(...)

    async with MockService({GENERATE: generate, CATALOG: CatalogReply(aliases=[])}, settings):
        ...  # callers reach it over the real bus, as they would the real service

    mock.received(GENERATE)  # the validated requests it was sent, in order

An answer is a reply (given to every request), a list of chunks (a stream interface),
or a function of the request (and, if it takes two arguments, the ``MessageContext``),
sync or async; for a stream it returns the chunks (a list, an iterable or an async
iterable) or is an async generator. For an event interface the function is the
subscriber. Raise :class:`~agentbus.framework.ServiceError` to answer with an error.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from agentbus.framework.config import Settings
from agentbus.framework.context import MessageContext
from agentbus.framework.declarations import Declaration, EndpointSpec, SubscriptionSpec
from agentbus.framework.service import Service
from agentbus.interfaces.message import BusMessage, Interface, InterfaceKind

Answer = BusMessage | list[BusMessage] | Callable[..., Any]
"""A fixed reply, the chunks of a stream, or a function of the request (see the module doc)."""


class MockService(Service):
    """Serves each interface in ``answers`` on the real bus; records what it received."""

    __test__ = False  # not a test class, whatever pytest's collection patterns say
    name = "mock"

    def __init__(
        self,
        answers: Mapping[Interface[Any, Any], Answer],
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, **kwargs)
        self.answers = dict(answers)
        self._received: dict[str, list[BusMessage]] = {i.key: [] for i in self.answers}

    def received(self, interface: Interface[Any, Any]) -> list[BusMessage]:
        """The messages received on ``interface`` so far, oldest first."""
        return self._received[interface.key]

    def declarations(self) -> Iterator[Declaration]:
        yield from super().declarations()
        for interface, answer in self.answers.items():
            if interface.kind is InterfaceKind.EVENT:
                spec: EndpointSpec | SubscriptionSpec = SubscriptionSpec(
                    interface, None, None, 30.0, 1
                )
                handler = self._subscriber(interface, answer)
            elif interface.kind is InterfaceKind.STREAM:
                spec, handler = EndpointSpec(interface, None), self._streamer(interface, answer)
            else:
                spec, handler = EndpointSpec(interface, None), self._responder(interface, answer)
            yield Declaration(spec, handler, f"mock_{interface.name.replace('.', '_')}")

    async def _call(self, answer: Callable[..., Any], message: Any, ctx: MessageContext) -> Any:
        takes_ctx = len(inspect.signature(answer).parameters) >= 2
        result = answer(message, ctx) if takes_ctx else answer(message)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _responder(self, interface: Interface[Any, Any], answer: Answer) -> Callable[..., Any]:
        async def respond(request: BusMessage, ctx: MessageContext) -> Any:
            self._received[interface.key].append(request)
            if isinstance(answer, BusMessage):
                return answer
            if isinstance(answer, list):
                raise TypeError(f"{interface.key} is a request interface: answer with one reply")
            return await self._call(answer, request, ctx)

        return respond

    def _streamer(self, interface: Interface[Any, Any], answer: Answer) -> Callable[..., Any]:
        async def stream(request: BusMessage, ctx: MessageContext) -> AsyncIterator[Any]:
            self._received[interface.key].append(request)
            if isinstance(answer, list):
                chunks: Any = answer
            elif isinstance(answer, BusMessage):
                chunks = [answer]
            elif inspect.isasyncgenfunction(answer):
                takes_ctx = len(inspect.signature(answer).parameters) >= 2
                chunks = answer(request, ctx) if takes_ctx else answer(request)
            else:
                chunks = await self._call(answer, request, ctx)
            if hasattr(chunks, "__aiter__"):
                async for chunk in chunks:
                    yield chunk
            else:
                for chunk in chunks:
                    yield chunk

        return stream

    def _subscriber(self, interface: Interface[Any, Any], answer: Answer) -> Callable[..., Any]:
        if not callable(answer):
            raise TypeError(f"{interface.key} is an event interface: give a function to call")

        async def consume(event: BusMessage, ctx: MessageContext) -> None:
            self._received[interface.key].append(event)
            await self._call(answer, event, ctx)

        return consume
