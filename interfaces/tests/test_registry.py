"""The registry of interface versions and its published JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentbus.interfaces.errors import RegistryError, UnknownInterfaceError
from agentbus.interfaces.message import BusMessage, event_interface, request_interface
from agentbus.interfaces.registry import (
    Problem,
    Registry,
    check_registry,
    export_schemas,
    load_schema,
    published,
    render,
    schema_path,
)
from agentbus.interfaces.semver import Version


class Ask(BusMessage):
    question: str


class AskWithLimit(BusMessage):  # compatible: one more optional field
    question: str
    limit: int = 10


class AskRenamed(BusMessage):  # breaking: the old field is gone, a new one is required
    prompt: str


class Answer(BusMessage):
    text: str


class AnswerWithScore(BusMessage):  # a reply that grew a field: old callers ignore it
    text: str
    score: float = 0.0


class Bare(BusMessage):  # a reply that lost its field: old callers break
    pass


ASK_1 = request_interface("test.ask", "1.0.0", request=Ask, reply=Answer)
ASK_1_1 = request_interface("test.ask", "1.1.0", request=AskWithLimit, reply=Answer)
ASK_2 = request_interface("test.ask", "2.0.0", request=AskRenamed, reply=Answer)
TOLD = event_interface("test.told", "1.0.0", payload=Ask)


# -- lookups ------------------------------------------------------------------------------------


def test_get_newest_or_a_given_version() -> None:
    registry = Registry([ASK_2, ASK_1, ASK_1_1, TOLD])

    assert registry.get("test.ask") is ASK_2
    assert registry.get("test.ask", "1.1.0") is ASK_1_1
    assert registry.get("test.ask", Version(1, 0, 0)) is ASK_1
    assert registry.versions("test.ask") == [ASK_1, ASK_1_1, ASK_2]
    assert registry.names() == ["test.ask", "test.told"]
    assert len(registry) == 4
    assert list(registry) == [ASK_1, ASK_1_1, ASK_2, TOLD]


def test_resolve_name_or_name_at_version() -> None:
    registry = Registry([ASK_1, ASK_1_1])

    assert registry.resolve("test.ask") is ASK_1_1
    assert registry.resolve("test.ask@1.0.0") is ASK_1


def test_unknown_name_lists_what_is_known() -> None:
    registry = Registry([ASK_1, TOLD])

    with pytest.raises(UnknownInterfaceError, match=r"unknown interface 'nope'; known: test\.ask"):
        registry.get("nope")
    with pytest.raises(UnknownInterfaceError, match="known: none"):
        Registry().resolve("nope")


def test_unknown_version_lists_the_registered_ones() -> None:
    registry = Registry([ASK_1, ASK_2])

    with pytest.raises(
        UnknownInterfaceError, match=r"no version 1\.5\.0; registered: 1\.0\.0, 2\.0\.0"
    ):
        registry.resolve("test.ask@1.5.0")
    assert issubclass(UnknownInterfaceError, LookupError)


def test_the_same_declaration_twice_is_fine() -> None:
    registry = Registry([ASK_1, ASK_1])
    registry.extend(Registry([ASK_1, TOLD]))

    assert len(registry) == 2


def test_one_version_with_two_shapes_clashes() -> None:
    clash = request_interface("test.ask", "1.0.0", request=AskWithLimit, reply=Answer)

    with pytest.raises(RegistryError, match=r"test\.ask@1\.0\.0 is declared twice"):
        Registry([ASK_1, clash])


# -- published schema files ---------------------------------------------------------------------


def test_export_writes_canonical_files_once(tmp_path: Path) -> None:
    registry = Registry([ASK_1, TOLD])

    written = export_schemas(registry, tmp_path)

    expected = schema_path(tmp_path, "test.ask", "1.0.0")
    assert expected == tmp_path / "test.ask" / "1.0.0.json"
    assert sorted(written) == sorted([expected, tmp_path / "test.told" / "1.0.0.json"])
    text = expected.read_text(encoding="utf-8")
    assert text == json.dumps(ASK_1.json_schema(), indent=2, sort_keys=True) + "\n"
    assert text == render(ASK_1.json_schema())
    assert export_schemas(registry, tmp_path) == [], "unchanged files are not rewritten"

    expected.write_text("{}", encoding="utf-8")
    assert export_schemas(registry, tmp_path) == [expected]
    assert expected.read_text(encoding="utf-8") == text


def test_published_reads_every_version(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1, ASK_2]), tmp_path)

    found = published(tmp_path, "test.ask")

    assert sorted(found) == [Version(1, 0, 0), Version(2, 0, 0)]
    assert found[Version(2, 0, 0)]["message"]["title"] == "AskRenamed"
    assert published(tmp_path, "never.published") == {}


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "cannot read schema file"), ('{"interface": "x"}', "no 'message' key")],
)
def test_unusable_schema_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(RegistryError, match=match):
        load_schema(path)


# -- check_registry -----------------------------------------------------------------------------


def messages(problems: list[Problem]) -> str:
    return " | ".join(p.message for p in problems)


def test_published_registry_checks_clean(tmp_path: Path) -> None:
    registry = Registry([ASK_1, ASK_1_1, ASK_2, TOLD])
    export_schemas(registry, tmp_path)

    assert check_registry(registry, tmp_path) == []


def test_brand_new_interface_needs_nothing_published(tmp_path: Path) -> None:
    assert check_registry(Registry([ASK_2, TOLD]), tmp_path) == []


def test_changed_in_place_is_detected(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1]), tmp_path)
    edited = request_interface("test.ask", "1.0.0", request=AskWithLimit, reply=Answer)

    problems = check_registry(Registry([edited]), tmp_path)

    assert len(problems) == 1
    assert problems[0].interface == "test.ask@1.0.0"
    assert "changed after it was published" in problems[0].message
    assert "minor bump needed" in problems[0].message


def test_breaking_change_without_a_major_bump_is_detected(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1]), tmp_path)
    sneaky = request_interface("test.ask", "1.1.0", request=AskRenamed, reply=Answer)

    problems = check_registry(Registry([ASK_1, sneaky]), tmp_path)

    assert [p.interface for p in problems] == ["test.ask@1.1.0"]
    assert "breaking change needs a major version bump" in messages(problems)
    assert "2.0.0" in messages(problems)
    report = problems[0].report
    assert report is not None
    assert {f.kind for f in report.findings} >= {"field_removed", "required_added"}


def test_breaking_change_with_a_major_bump_is_fine(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1]), tmp_path)

    assert check_registry(Registry([ASK_1, ASK_2]), tmp_path) == []


def test_compatible_change_needs_at_least_a_minor_bump(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1]), tmp_path)
    patch = request_interface("test.ask", "1.0.1", request=AskWithLimit, reply=Answer)

    assert check_registry(Registry([ASK_1, ASK_1_1]), tmp_path) == []
    problems = check_registry(Registry([ASK_1, patch]), tmp_path)
    assert "compatible change needs at least a minor version bump" in messages(problems)


def test_new_version_is_compared_with_the_newest_older_one(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1, ASK_2]), tmp_path)
    back_to_question = request_interface("test.ask", "2.1.0", request=Ask, reply=Answer)

    problems = check_registry(Registry([ASK_1, ASK_2, back_to_question]), tmp_path)

    assert [p.interface for p in problems] == ["test.ask@2.1.0"], "compared with 2.0.0, not 1.0.0"


def test_reply_changes_are_judged_from_the_callers_side(tmp_path: Path) -> None:
    export_schemas(Registry([ASK_1]), tmp_path)
    richer = request_interface("test.ask", "1.1.0", request=Ask, reply=AnswerWithScore)
    poorer = request_interface("test.ask", "1.1.0", request=Ask, reply=Bare)

    assert check_registry(Registry([ASK_1, richer]), tmp_path) == []
    problems = check_registry(Registry([ASK_1, poorer]), tmp_path)
    assert "breaking change needs a major version bump" in messages(problems)


def test_kind_change_is_breaking(tmp_path: Path) -> None:
    export_schemas(Registry([TOLD]), tmp_path)
    now_a_request = request_interface("test.told", "1.1.0", request=Ask, reply=Answer)

    problems = check_registry(Registry([TOLD, now_a_request]), tmp_path)

    assert "breaking change needs a major version bump" in messages(problems)
