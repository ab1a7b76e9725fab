"""Keep a conversation inside the model's context budget by summarising its older turns.

The conversation is split into three parts::

    head     leading system messages and the first user message (the task): kept
    old      everything between: replaced by one summary message
    recent   the last ``keep_recent`` messages, moved earlier so that it never starts
             with a tool result: an assistant's tool calls and their results stay together

The summary is a durable model step (``summarise``), so a replayed run rebuilds
exactly the same conversation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentbus.interfaces.catalog.model import (
    AssistantMessage,
    GenerateRequest,
    GenerationSettings,
    Message,
    SystemMessage,
    ToolResultMessage,
    UserMessage,
)

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
SUMMARISE_PROMPT = (
    "Summarise the conversation below for the assistant who continues it. Keep every fact, "
    "file name, decision, tool result and open question it will need; drop pleasantries. "
    "Answer with the summary only."
)


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A provider-independent estimate: about four characters per token."""
    characters = 0
    for message in messages:
        if isinstance(message, AssistantMessage):
            characters += len(message.text)
            characters += sum(
                len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls
            )
        elif isinstance(message, UserMessage) and not isinstance(message.content, str):
            characters += sum(len(getattr(part, "text", "")) + 100 for part in message.content)
        else:
            characters += len(str(message.content))
        characters += 16  # role and framing
    return characters // 4 + 1


def split(
    messages: Sequence[Message], budget: int, keep_recent: int = 4
) -> tuple[list[Message], list[Message], list[Message]] | None:
    """``(head, old, recent)`` when the conversation exceeds ``budget`` tokens and has
    something to summarise; ``None`` otherwise."""
    if estimate_tokens(messages) <= budget:
        return None
    start = 0
    while start < len(messages) and isinstance(messages[start], SystemMessage):
        start += 1
    if start < len(messages) and isinstance(messages[start], UserMessage):
        start += 1
    cut = max(start, len(messages) - keep_recent)
    while cut > start and isinstance(messages[cut], ToolResultMessage):
        cut -= 1  # keep the assistant's tool calls with their results
    if cut - start < 2:
        return None  # nothing worth summarising
    return list(messages[:start]), list(messages[start:cut]), list(messages[cut:])


def transcript(messages: Sequence[Message]) -> str:
    lines = []
    for message in messages:
        if isinstance(message, AssistantMessage):
            calls = "; ".join(f"{c.name}({json.dumps(c.arguments)})" for c in message.tool_calls)
            lines.append(
                f"assistant: {message.text}" + (f" [tool calls: {calls}]" if calls else "")
            )
        elif isinstance(message, ToolResultMessage):
            lines.append(f"tool {message.name} result: {message.content}")
        elif isinstance(message, UserMessage):
            content = message.content
            text = (
                content
                if isinstance(content, str)
                else " ".join(getattr(part, "text", "[image]") for part in content)
            )
            lines.append(f"user: {text}")
        else:
            lines.append(f"system: {message.content}")
    return "\n".join(lines)


def summary_request(model: str, old: Sequence[Message]) -> GenerateRequest:
    return GenerateRequest(
        model=model,
        messages=[
            SystemMessage(content=SUMMARISE_PROMPT),
            UserMessage(content=transcript(old)),
        ],
        settings=GenerationSettings(temperature=0),
    )


def summary_message(text: str) -> UserMessage:
    return UserMessage(content=SUMMARY_PREFIX + text)
