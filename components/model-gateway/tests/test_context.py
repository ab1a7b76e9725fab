"""context/ validates against the repository's context schemas and tells the truth about code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from agentbus.interfaces.catalog.model import INTERFACES

COMPONENT = Path(__file__).resolve().parent.parent
SCHEMAS = COMPONENT.parent.parent / "context-schemas"


@pytest.mark.parametrize(
    ("document", "schema"),
    [("context.json", "context.v1.json"), ("agent-config.json", "agent-config.v1.json")],
)
def test_context_files_validate(document: str, schema: str) -> None:
    validator = Draft202012Validator(
        json.loads((SCHEMAS / schema).read_text(encoding="utf-8")), format_checker=FormatChecker()
    )
    instance = json.loads((COMPONENT / "context" / document).read_text(encoding="utf-8"))

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == []


def test_context_lists_the_interfaces_the_code_provides() -> None:
    context = json.loads((COMPONENT / "context" / "context.json").read_text(encoding="utf-8"))

    provided = {(i["name"], i["version"]) for i in context["interfaces"]["provides"]}
    assert provided == {(i.name, str(i.version)) for i in INTERFACES}
    assert context["component"] == COMPONENT.name
