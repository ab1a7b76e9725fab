"""Every component has a real context/ that validates against context-schemas/ (issue 6, part 1)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = {
    "context.json": ROOT / "context-schemas" / "context.v1.json",
    "agent-config.json": ROOT / "context-schemas" / "agent-config.v1.json",
}
REQUIRED = ("model-gateway", "tool-executor", "workflow-runner", "maintainer")
COMPONENTS = sorted(p for p in (ROOT / "components").iterdir() if (p / "pyproject.toml").is_file())
CONTEXT_FOLDERS = [
    *COMPONENTS,
    ROOT / "examples" / "maintainers" / "sample-component",
    *sorted((ROOT / "examples" / "parallel-agents" / "components").iterdir()),
]


@pytest.mark.parametrize("name", REQUIRED)
def test_the_four_components_have_a_context(name: str) -> None:
    folder = ROOT / "components" / name
    for file_name in SCHEMAS:
        assert (folder / "context" / file_name).is_file(), f"{name} lacks context/{file_name}"


@pytest.mark.parametrize("schema", sorted(SCHEMAS.values()), ids=lambda p: p.name)
def test_the_schemas_are_valid_json_schemas(schema: Path) -> None:
    Draft202012Validator.check_schema(json.loads(schema.read_text(encoding="utf-8")))


@pytest.mark.parametrize("folder", CONTEXT_FOLDERS, ids=lambda p: p.name)
def test_every_context_validates(folder: Path) -> None:
    documents = {}
    for file_name, schema in SCHEMAS.items():
        path = folder / "context" / file_name
        assert path.is_file(), f"{folder.name} has no context/{file_name}"
        document = json.loads(path.read_text(encoding="utf-8"))
        validator = Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))
        errors = [
            f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        assert not errors, f"{path.relative_to(ROOT)}:\n" + "\n".join(errors)
        documents[file_name] = document
    assert documents["context.json"]["component"] == documents["agent-config.json"]["component"]
    if folder.parent.name == "components":
        assert documents["context.json"]["component"] == folder.name


@pytest.mark.parametrize("folder", COMPONENTS, ids=lambda p: p.name)
def test_the_context_version_is_the_package_version(folder: Path) -> None:
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    context = json.loads((folder / "context" / "context.json").read_text(encoding="utf-8"))
    assert context["version"] == project["version"]
