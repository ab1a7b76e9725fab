"""The context folder validates against the context schemas; the shipped example policy loads."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from agentbus.interfaces.catalog.tools import INTERFACES
from agentbus.tool_executor.policy import PolicyFile

COMPONENT = Path(__file__).resolve().parent.parent
SCHEMAS = COMPONENT.parent.parent / "context-schemas"


@pytest.mark.parametrize(
    ("document", "schema"),
    [("context.json", "context.v1.json"), ("agent-config.json", "agent-config.v1.json")],
)
def test_context_documents_match_their_schema(document: str, schema: str) -> None:
    instance = json.loads((COMPONENT / "context" / document).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / schema).read_text(encoding="utf-8")),
        format_checker=jsonschema.FormatChecker(),
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == []


def test_context_lists_exactly_the_interfaces_we_provide() -> None:
    context = json.loads((COMPONENT / "context" / "context.json").read_text(encoding="utf-8"))
    provided = {(i["name"], i["version"]) for i in context["interfaces"]["provides"]}
    assert provided == {(i.name, str(i.version)) for i in INTERFACES}


def test_the_example_policy_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_WORKSPACE", "/srv/ws")
    policies = PolicyFile.load(COMPONENT / "tools.example.toml")
    assert policies.for_caller("someone-else") == policies.policy["default"]
    assert policies.for_caller("someone-else").tools == ()
    assert str(policies.for_caller("coder").roots[0]) == "/srv/ws"
