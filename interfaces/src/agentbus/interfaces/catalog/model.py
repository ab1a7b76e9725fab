"""Model interfaces, by capability (in the spirit of the Vercel AI SDK).

=============================  =========  ===================================================
interface                      kind       what
=============================  =========  ===================================================
``model.language.generate``    request    messages + tools + settings -> one assistant message
``model.language.stream``      stream     the same request -> ordered parts, ended by a finish
``model.embedding.embed``      request    texts -> vectors
``model.catalog``              request    the configured aliases and their capabilities
=============================  =========  ===================================================

Callers name a model *alias* (``fast``, ``smart``, ``embed``); the gateway owns
which provider and model an alias means, its keys, retries and fallbacks.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from agentbus.interfaces.message import BusMessage, request_interface, stream_interface

# -- message content -------------------------------------------------------------------


class TextPart(BusMessage):
    """Plain text inside a user message."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(BusMessage):
    """An image inside a user message; needs an alias with the ``vision`` capability."""

    type: Literal["image"] = "image"
    url: str = Field(description="An https: URL or a data: URL (data:image/png;base64,...).")


UserContent = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(BusMessage):
    """A call of one tool, as decided by the model."""

    id: str = Field(description="The provider's call id; echo it in the ToolResultMessage.")
    name: str
    arguments: dict[str, JsonValue] = Field(
        default_factory=dict, description="The arguments, a JSON object matching the tool schema."
    )


class SystemMessage(BusMessage):
    role: Literal["system"] = "system"
    content: str


class UserMessage(BusMessage):
    role: Literal["user"] = "user"
    content: str | list[UserContent] = Field(description="Text, or a list of text/image parts.")


class AssistantMessage(BusMessage):
    role: Literal["assistant"] = "assistant"
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolResultMessage(BusMessage):
    """The result of a tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str = Field(description="The tool's name (Anthropic-style providers need no id map).")
    content: str
    is_error: bool = False


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolResultMessage,
    Field(discriminator="role"),
]


def _empty_object_schema() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class ToolDefinition(BusMessage):
    """A tool the model may call."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, JsonValue] = Field(
        default_factory=_empty_object_schema,
        description="JSON Schema of the arguments object.",
    )


class StructuredOutput(BusMessage):
    """Ask for a JSON answer matching a schema; needs the ``structured_output`` capability."""

    name: str = Field(default="output", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    json_schema: dict[str, JsonValue]


class GenerationSettings(BusMessage):
    """Per-request settings; unset values fall back to the alias's defaults."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = None
    structured_output: StructuredOutput | None = None


class Usage(BusMessage):
    input_tokens: int = 0
    output_tokens: int = 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]
ToolChoice = Literal["auto", "none", "required"]


# -- model.language.generate -------------------------------------------------------------


class GenerateRequest(BusMessage):
    model: str = Field(min_length=1, description="A model alias from model.catalog.")
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    settings: GenerationSettings = Field(default_factory=GenerationSettings)


class GenerateReply(BusMessage):
    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage
    model: str = Field(description="The provider's model that actually answered.")
    alias: str = Field(description="The alias that answered (differs after a fallback).")
    provider: str


GENERATE = request_interface(
    "model.language.generate",
    "1.0.0",
    request=GenerateRequest,
    reply=GenerateReply,
    description="Generate one assistant message (text and/or tool calls) with a model alias.",
)


# -- model.language.stream ---------------------------------------------------------------


class TextDelta(BusMessage):
    type: Literal["text"] = "text"
    text: str


class ToolCallDelta(BusMessage):
    """A piece of a tool call; ``id`` and ``name`` come with the first piece of each call."""

    type: Literal["tool_call"] = "tool_call"
    index: int = Field(ge=0, description="Which tool call of this answer the piece belongs to.")
    id: str | None = None
    name: str | None = None
    arguments: str = Field(default="", description="A fragment of the arguments' JSON text.")


class UsageUpdate(BusMessage):
    type: Literal["usage"] = "usage"
    usage: Usage


class Finish(BusMessage):
    """The last part of a successful stream."""

    type: Literal["finish"] = "finish"
    finish_reason: FinishReason
    usage: Usage
    model: str
    alias: str
    provider: str


StreamPart = Annotated[
    TextDelta | ToolCallDelta | UsageUpdate | Finish, Field(discriminator="type")
]


class StreamChunk(BusMessage):
    """One chunk of ``model.language.stream``: a text delta, tool-call delta, usage or finish."""

    part: StreamPart


STREAM = stream_interface(
    "model.language.stream",
    "1.0.0",
    request=GenerateRequest,
    chunk=StreamChunk,
    description="Generate with a model alias, streaming ordered parts; ends with a finish part.",
)


# -- model.embedding.embed ---------------------------------------------------------------


class EmbedRequest(BusMessage):
    model: str = Field(min_length=1, description="An embedding alias from model.catalog.")
    texts: list[str] = Field(min_length=1, max_length=2048)
    dimensions: int | None = Field(default=None, gt=0, description="Shorter vectors, if supported.")


class EmbedReply(BusMessage):
    vectors: list[list[float]]
    dimensions: int
    usage: Usage
    model: str
    alias: str
    provider: str


EMBED = request_interface(
    "model.embedding.embed",
    "1.0.0",
    request=EmbedRequest,
    reply=EmbedReply,
    description="Embed texts into vectors with an embedding alias.",
)


# -- model.catalog -----------------------------------------------------------------------


class CatalogRequest(BusMessage):
    """No fields: the whole catalog."""


class AliasInfo(BusMessage):
    alias: str
    capability: Literal["language", "embedding"]
    provider: str
    provider_kind: str
    model: str
    tools: bool = False
    vision: bool = False
    structured_output: bool = False
    context_window: int | None = None
    dimensions: int | None = None
    fallback: list[str] = Field(default_factory=list)


class CatalogReply(BusMessage):
    aliases: list[AliasInfo]
    source: str = Field(description="Where the configuration came from (a file or environment).")


CATALOG = request_interface(
    "model.catalog",
    "1.0.0",
    request=CatalogRequest,
    reply=CatalogReply,
    description="The configured model aliases with their capabilities.",
)

INTERFACES = (GENERATE, STREAM, EMBED, CATALOG)
