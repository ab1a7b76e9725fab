"""The model test kit: everything a test needs to stand in for models, for any component.

- :mod:`.http_fake`: :class:`FakeServer`, a scripted HTTP server on loopback (``Scripted``
  answers, ``Received`` requests, ``sse`` events);
- :mod:`.openai_fake` / :mod:`.anthropic_fake`: :class:`FakeOpenAI` / :class:`FakeAnthropic`
  speak the providers' wire protocols, with builders for their answers;
- :mod:`.scripted_model`: :class:`FakeModel`, a fake OpenAI-compatible provider answering
  from a *brain* (``answer``, ``messages``, ``tool_results``, ``first_user``);
- :mod:`.fake_gateway`: :class:`FakeModelGateway`, the gateway's interfaces on the bus
  with a fixed answer (also a process: ``agentbus serve
  agentbus.model_gateway.testing:FakeModelGateway``);
- :mod:`.builders`: ``ask``, ``collect``, ``WEATHER`` for requests to the gateway.

Nothing here imports pytest.
"""

from agentbus.model_gateway.testing.anthropic_fake import (
    FakeAnthropic,
    anthropic_error,
    anthropic_message,
    anthropic_stream,
)
from agentbus.model_gateway.testing.builders import WEATHER, ask, collect
from agentbus.model_gateway.testing.fake_gateway import (
    ANSWER_ENV,
    DEFAULT_ANSWER,
    LATENCY_ENV,
    FakeModelGateway,
)
from agentbus.model_gateway.testing.http_fake import (
    FakeServer,
    Received,
    Responder,
    Scripted,
    malformed,
    sse,
)
from agentbus.model_gateway.testing.openai_fake import (
    FakeOpenAI,
    openai_completion,
    openai_embeddings,
    openai_error,
    openai_stream,
    openai_text,
)
from agentbus.model_gateway.testing.scripted_model import (
    Brain,
    FakeModel,
    answer,
    first_user,
    messages,
    tool_results,
)

__all__ = [
    "ANSWER_ENV",
    "DEFAULT_ANSWER",
    "LATENCY_ENV",
    "WEATHER",
    "Brain",
    "FakeAnthropic",
    "FakeModel",
    "FakeModelGateway",
    "FakeOpenAI",
    "FakeServer",
    "Received",
    "Responder",
    "Scripted",
    "answer",
    "anthropic_error",
    "anthropic_message",
    "anthropic_stream",
    "ask",
    "collect",
    "first_user",
    "malformed",
    "messages",
    "openai_completion",
    "openai_embeddings",
    "openai_error",
    "openai_stream",
    "openai_text",
    "sse",
    "tool_results",
]
