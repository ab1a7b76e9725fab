"""``ask-model``: the model gateway decides with the component's context, or we escalate.

The model is asked over the bus (``model.language.generate``) for a JSON object
``{"action": "ignore" | "act" | "escalate", "reason": "..."}``. No gateway, no
model configured, a failure or an answer that is not such an object: escalate,
saying why. A model is never trusted to do more than choose among those three.
"""

from __future__ import annotations

import json
import logging
import re

from agentbus.framework import Bus, BusError, RemoteError
from agentbus.interfaces.catalog.model import (
    GENERATE,
    GenerateRequest,
    GenerationSettings,
    SystemMessage,
    UserMessage,
)
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.maintainer.context import ComponentContext
from agentbus.maintainer.rules import Decision, Facts

log = logging.getLogger("agentbus.maintainer.decide")

INSTRUCTIONS = (
    "You maintain one software component. An event arrived. Decide whether the component "
    "should ignore it, act on it autonomously (update, test old and new version, promote), "
    "or escalate it to a person. Answer with one JSON object and nothing else: "
    '{"action": "ignore" | "act" | "escalate", "reason": "<one sentence>"}.'
)
_OBJECT_RE = re.compile(r"\{.*\}", re.S)
ACTIONS = ("ignore", "act", "escalate")


def parse_answer(text: str) -> tuple[str, str] | None:
    """``(action, reason)`` from the model's text, or ``None`` when it is not usable."""
    found = _OBJECT_RE.search(text)
    if found is None:
        return None
    try:
        answer = json.loads(found.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or answer.get("action") not in ACTIONS:
        return None
    return str(answer["action"]), str(answer.get("reason") or "the model gave no reason")


async def ask_model(
    bus: Bus,
    component: ComponentContext,
    facts: Facts,
    event_json: str,
    *,
    timeout: float = 120.0,
) -> Decision:
    """Ask the gateway; fall back to escalate when it cannot answer usefully."""
    request = GenerateRequest(
        model=component.model,
        messages=[
            SystemMessage(content=INSTRUCTIONS),
            UserMessage(
                content=(
                    f"Component context: {component.prompt_summary()}\n"
                    f"Event {facts.event}: {event_json}\n"
                    f"Relation to the component: {facts.relation}; semver change: {facts.change}"
                )
            ),
        ],
        settings=GenerationSettings(temperature=0),
    )
    try:
        reply = await bus.request(GENERATE, request, timeout=timeout)
    except RemoteError as exc:
        if exc.code == ErrorCode.NOT_CONFIGURED:
            return Decision("escalate", f"no model is configured ({exc.reply.message})", "model")
        return Decision("escalate", f"the model gateway failed: {exc}", "model")
    except BusError as exc:  # no gateway running, timeout, connection lost
        return Decision("escalate", f"no model answered: {exc}", "model")
    parsed = parse_answer(reply.message.text)
    if parsed is None:
        log.warning("%s: unusable model answer %r", component.name, reply.message.text[:200])
        return Decision(
            "escalate",
            f"the model's answer was not a decision: {reply.message.text[:200]!r}",
            "model",
        )
    action, reason = parsed
    return Decision(action, f"{reason} (model {reply.alias}/{reply.model})", "model")
