"""The committed JSON Schemas are exactly what the registry exports (no drift)."""

from __future__ import annotations

from pathlib import Path

from agentbus.interfaces.catalog import REGISTRY
from agentbus.interfaces.registry import check_registry, export_schemas, render, schema_path

SCHEMAS = Path(__file__).resolve().parent.parent / "interfaces" / "schemas"


def test_every_interface_version_is_exported_unchanged() -> None:
    for interface in REGISTRY:
        path = schema_path(SCHEMAS, interface.name, interface.version)
        assert path.is_file(), f"{interface.key} is not exported: run `make schemas`"
        assert path.read_text(encoding="utf-8") == render(interface.json_schema()), (
            f"{path} drifted from the code: a published version must not change; declare a new "
            "version (or, before publishing, run `make schemas`)"
        )


def test_regenerating_into_a_fresh_folder_gives_the_committed_files(tmp_path: Path) -> None:
    export_schemas(REGISTRY, tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    committed = sorted(p.relative_to(SCHEMAS) for p in SCHEMAS.rglob("*.json"))
    assert fresh == committed
    for relative in fresh:
        assert (tmp_path / relative).read_bytes() == (SCHEMAS / relative).read_bytes()


def test_the_registry_is_consistent_with_what_was_published() -> None:
    assert check_registry(REGISTRY, SCHEMAS) == []
