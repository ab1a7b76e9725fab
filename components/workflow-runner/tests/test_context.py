"""context/ validates against the repository's context schemas and tells the truth about code."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from agentbus.interfaces.catalog.workflows import INTERFACES
from agentbus.workflow_runner.presets import presets
from agentbus.workflow_runner.service import WorkflowRunner

COMPONENT = Path(__file__).resolve().parent.parent
SCHEMAS = COMPONENT.parent.parent / "context-schemas"


def load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((COMPONENT / "context" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("document", "schema"),
    [("context.json", "context.v1.json"), ("agent-config.json", "agent-config.v1.json")],
)
def test_context_files_validate(document: str, schema: str) -> None:
    validator = Draft202012Validator(
        json.loads((SCHEMAS / schema).read_text(encoding="utf-8")), format_checker=FormatChecker()
    )
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(document))
    ]
    assert errors == []


def test_context_names_what_the_code_provides_and_declares() -> None:
    context = load("context.json")
    provided = {(i["name"], i["version"]) for i in context["interfaces"]["provides"]}
    assert provided == {(i.name, str(i.version)) for i in INTERFACES}
    assert context["component"] == COMPONENT.name == WorkflowRunner.name
    assert context["version"] == WorkflowRunner.version
    project = tomllib.loads((COMPONENT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        d.split(">")[0].split("<")[0].split("=")[0] for d in project["project"]["dependencies"]
    }
    assert {d["package"] for d in context["dependencies"]} == declared
    text = json.dumps(context)
    for workflow in presets.workflows:
        assert workflow in text
