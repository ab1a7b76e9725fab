"""A component as its maintainer sees it: context/, agent-config, declared dependencies.

The two files are validated against the JSON Schemas of ``context-schemas/``
(a copy ships in this package; a test keeps the copies identical).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from agentbus.maintainer.errors import ContextError

CONTEXT_FILE = "context.json"
AGENT_CONFIG_FILE = "agent-config.json"
SCHEMAS = {CONTEXT_FILE: "context.v1.json", AGENT_CONFIG_FILE: "agent-config.v1.json"}
DEFAULT_MODEL = "smart"


@cache
def _validator(schema_file: str) -> Draft202012Validator:
    text = (files("agentbus.maintainer") / "schemas" / schema_file).read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


def validation_errors(document: Any, file_name: str) -> list[str]:
    """Every way ``document`` breaks the schema of ``file_name``, as readable lines."""
    errors = sorted(_validator(SCHEMAS[file_name]).iter_errors(document), key=lambda e: e.path)
    return [f"{'/'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContextError(
            f"{path} is missing: every component needs context/{path.name}"
        ) from None
    except json.JSONDecodeError as exc:
        raise ContextError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def declared_requirements(component_dir: Path) -> dict[str, Requirement]:
    """``[project].dependencies`` of the component's pyproject, by canonical name."""
    pyproject = component_dir / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    found: dict[str, Requirement] = {}
    for text in data.get("project", {}).get("dependencies", []):
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ContextError(f"{pyproject}: bad dependency {text!r}: {exc}") from None
        found[canonicalize_name(requirement.name)] = requirement
    return found


@dataclass(frozen=True)
class ComponentContext:
    """The validated context of one component folder."""

    path: Path
    context: dict[str, Any]
    config: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> ComponentContext:
        path = path.resolve()
        if not path.is_dir():
            raise ContextError(f"{path} is not a component folder")
        documents = {}
        for name in SCHEMAS:
            document = read_json(path / "context" / name)
            errors = validation_errors(document, name)
            if errors:
                raise ContextError(
                    f"{path / 'context' / name} does not match {SCHEMAS[name]}: "
                    + "; ".join(errors[:5])
                )
            documents[name] = document
        context, config = documents[CONTEXT_FILE], documents[AGENT_CONFIG_FILE]
        if context["component"] != config["component"]:
            raise ContextError(
                f"{path}/context: context.json names {context['component']!r} but "
                f"agent-config.json names {config['component']!r}"
            )
        return cls(path, context, config)

    @property
    def name(self) -> str:
        return str(self.context["component"])

    @property
    def version(self) -> str:
        return str(self.context["version"])

    @property
    def autonomy(self) -> str:
        return str(self.config["autonomy"])

    @property
    def model(self) -> str:
        return str(self.config.get("model", DEFAULT_MODEL))

    def interface_versions(self, relation: str) -> dict[str, str]:
        """``provides`` or ``consumes``: interface name -> pinned version or range."""
        return {i["name"]: i["version"] for i in self.context["interfaces"][relation]}

    def declares(self, package: str) -> bool:
        """Whether the component depends on ``package`` (pyproject or context.json)."""
        wanted = canonicalize_name(package)
        if wanted in declared_requirements(self.path):
            return True
        return any(canonicalize_name(d["package"]) == wanted for d in self.context["dependencies"])

    def prompt_summary(self) -> str:
        """The context a model needs to decide, as compact JSON."""
        keep = ("component", "version", "purpose", "interfaces", "dependencies", "constraints")
        return json.dumps(
            {
                "context": {k: self.context[k] for k in keep},
                "autonomy": self.autonomy,
                "escalation_rules": self.config["escalation_rules"],
            },
            separators=(",", ":"),
        )
