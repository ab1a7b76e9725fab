"""Context loading and validation; the schemas shipped in the package are context-schemas/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentbus.maintainer.context import ComponentContext, validation_errors
from agentbus.maintainer.errors import ContextError
from agentbus.maintainer.testing import SAMPLE

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_SCHEMAS = ROOT / "components" / "maintainer" / "src" / "agentbus" / "maintainer" / "schemas"


@pytest.mark.parametrize("name", ["context.v1.json", "agent-config.v1.json"])
def test_the_packaged_schemas_are_the_published_ones(name: str) -> None:
    published = (ROOT / "context-schemas" / name).read_text(encoding="utf-8")
    assert (PACKAGE_SCHEMAS / name).read_text(encoding="utf-8") == published


def test_the_maintainer_and_the_sample_have_valid_contexts() -> None:
    own = ComponentContext.load(ROOT / "components" / "maintainer")
    assert (own.name, own.autonomy) == ("maintainer", "propose")
    sample = ComponentContext.load(SAMPLE)
    assert sample.declares("greetlib")
    assert sample.interface_versions("consumes") == {"model.catalog": ">=1.0.0,<2.0.0"}


def copy_sample(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample"))


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    component = copy_sample(tmp_path)
    (component / "context" / "agent-config.json").unlink()
    with pytest.raises(ContextError, match=r"agent-config\.json is missing"):
        ComponentContext.load(component)


def test_an_invalid_file_names_the_field(tmp_path: Path) -> None:
    component = copy_sample(tmp_path)
    path = component / "context" / "agent-config.json"
    config = json.loads(path.read_text())
    config["autonomy"] = "reckless"
    path.write_text(json.dumps(config))
    with pytest.raises(ContextError, match=r"autonomy: 'reckless' is not one of"):
        ComponentContext.load(component)


def test_the_two_files_must_name_the_same_component(tmp_path: Path) -> None:
    component = copy_sample(tmp_path)
    path = component / "context" / "context.json"
    context = json.loads(path.read_text())
    context["component"] = "someone-else"
    path.write_text(json.dumps(context))
    with pytest.raises(ContextError, match="names 'someone-else'"):
        ComponentContext.load(component)


def test_validation_errors_lists_every_problem() -> None:
    errors = validation_errors({"schema_version": "2.0.0"}, "context.json")
    assert any(e.startswith("schema_version:") for e in errors)
    assert any("'purpose' is a required property" in e for e in errors)
