"""The schema compatibility checker, driven by real pydantic v2 models (old vs new)."""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from agentbus.interfaces.compat import (
    Compatibility,
    CompatibilityReport,
    Finding,
    check_version_bump,
    compare_schemas,
)

CLOSED = ConfigDict(extra="forbid")


def compare(old: type[BaseModel], new: type[BaseModel]) -> CompatibilityReport:
    return compare_schemas(old.model_json_schema(), new.model_json_schema())


def triples(report: CompatibilityReport) -> set[tuple[str, str, Compatibility]]:
    return {(f.path, f.kind, f.compatibility) for f in report.findings}


def model(name: str, config: ConfigDict = CLOSED, **fields: Any) -> type[BaseModel]:
    """A model from ``name=annotation`` or ``name=(annotation, default_or_Field)``."""
    annotations = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
    namespace: dict[str, Any] = {"__annotations__": annotations, "model_config": config}
    namespace.update({k: v[1] for k, v in fields.items() if isinstance(v, tuple)})
    return type(name, (BaseModel,), namespace)


# -- shared models ------------------------------------------------------------------------------


class Message(BaseModel):
    model_config = CLOSED
    role: Literal["user", "assistant", "system"]
    content: str


class MessageNoSystem(BaseModel):
    model_config = CLOSED
    role: Literal["user", "assistant"]
    content: str


class ChatV1(BaseModel):
    model_config = CLOSED
    messages: list[Message]
    seed: int | None = None


class ChatV2(BaseModel):
    model_config = CLOSED
    messages: list[MessageNoSystem]
    seed: int | None = None


class Params(BaseModel):
    model_config = CLOSED
    seed: int
    temperature: float = 1.0


class ParamsNoSeed(BaseModel):
    model_config = CLOSED
    temperature: float = 1.0


class Node(BaseModel):
    model_config = CLOSED
    value: int
    children: list[Node] = []


class NodeV2(BaseModel):
    model_config = CLOSED
    value: int
    children: list[NodeV2] = []
    label: str = ""


class NodeNarrowed(BaseModel):
    model_config = CLOSED
    value: Literal[1, 2]
    children: list[NodeNarrowed] = []


class Tree(BaseModel):  # mutual recursion: Tree -> Branch -> Tree
    model_config = CLOSED
    branches: list[Branch] = []


class Branch(BaseModel):
    model_config = CLOSED
    tree: Tree | None = None
    weight: int = 0


class TreeV2(BaseModel):
    model_config = CLOSED
    branches: list[BranchV2] = []


class BranchV2(BaseModel):
    model_config = CLOSED
    tree: TreeV2 | None = None
    weight: float = 0


class Text(BaseModel):
    model_config = CLOSED
    kind: Literal["text"] = "text"
    text: str


class Image(BaseModel):
    model_config = CLOSED
    kind: Literal["image"] = "image"
    url: str


class Audio(BaseModel):
    model_config = CLOSED
    kind: Literal["audio"] = "audio"
    seconds: float


class PartsAB(BaseModel):
    model_config = CLOSED
    part: Annotated[Text | Image, Field(discriminator="kind")]


class PartsABC(BaseModel):
    model_config = CLOSED
    part: Annotated[Text | Image | Audio, Field(discriminator="kind")]


class PartsA(BaseModel):
    model_config = CLOSED
    part: Annotated[Text, Field(discriminator="kind")] | Text


Node.model_rebuild()
NodeV2.model_rebuild()
NodeNarrowed.model_rebuild()
Tree.model_rebuild()
TreeV2.model_rebuild()


# -- NONE -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ChatV1, Params, Node, Tree, PartsABC])
def test_identical_models_are_none(cls: type[BaseModel]) -> None:
    report = compare(cls, cls)
    assert report.compatibility is Compatibility.NONE
    assert report.findings == ()
    assert report.required_bump() == "none"


def test_title_description_examples_changes_are_none() -> None:
    old = model("Old", x=(int, Field(0, title="X", description="old", examples=[1])))
    new = model("New", x=(int, Field(0, title="Ex", description="new", examples=[2, 3])))
    report = compare(old, new)
    assert report.compatibility is Compatibility.NONE
    assert report.findings == ()


def test_renamed_defs_entry_with_same_structure_is_none() -> None:
    inner_a = model("InnerA", q=int)
    inner_b = model("InnerB", q=int)
    old, new = model("M", inner=inner_a), model("M", inner=inner_b)
    assert "InnerA" in old.model_json_schema()["$defs"]
    report = compare(old, new)
    assert report.compatibility is Compatibility.NONE
    assert report.findings == ()


def test_inputs_are_not_mutated() -> None:
    old, new = ChatV1.model_json_schema(), ChatV2.model_json_schema()
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    compare_schemas(old, new)
    assert (old, new) == (old_copy, new_copy)


# -- fields ---------------------------------------------------------------------------------------


def test_field_removed_is_breaking() -> None:
    report = compare(Params, ParamsNoSeed)
    assert report.compatibility is Compatibility.BREAKING
    assert report.findings == (
        Finding(
            "/properties/seed", "field_removed", Compatibility.BREAKING, "field 'seed' was removed"
        ),
    )


def test_field_removed_from_nested_model_in_defs_has_the_nested_path() -> None:
    old, new = model("M", params=Params), model("M", params=ParamsNoSeed)
    report = compare(old, new)
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/params/properties/seed", "field_removed", Compatibility.BREAKING)
    }
    assert report.reasons == ["field 'params.seed' was removed"]


def test_optional_nested_model_reads_as_the_model_or_null() -> None:
    old, new = model("M", p=(Params | None, None)), model("M", p=(ParamsNoSeed | None, None))
    report = compare(old, new)
    assert triples(report) == {
        ("/properties/p/properties/seed", "field_removed", Compatibility.BREAKING)
    }


def test_model_shared_by_two_fields_is_compared_once() -> None:
    report = compare(model("M", a=Params, b=Params), model("M", a=ParamsNoSeed, b=ParamsNoSeed))
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/a/properties/seed", "field_removed", Compatibility.BREAKING)
    }


def test_field_removed_where_extra_fields_are_allowed_is_compatible() -> None:
    old = model("M", ConfigDict(extra="allow"), a=int, b=int)
    new = model("M", ConfigDict(extra="allow"), a=int)
    report = compare(old, new)
    assert triples(report) == {("/properties/b", "field_removed", Compatibility.COMPATIBLE)}


def test_new_required_field_is_breaking() -> None:
    report = compare(model("M", a=int), model("M", a=int, b=str))
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {("/properties/b", "required_added", Compatibility.BREAKING)}


@pytest.mark.parametrize("field", [(str, "x"), (str | None, None), (list[int], Field([]))])
def test_new_optional_field_is_compatible(field: tuple[Any, Any]) -> None:
    report = compare(model("M", a=int), model("M", a=int, b=field))
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {("/properties/b", "field_added", Compatibility.COMPATIBLE)}
    assert report.required_bump() == "minor"


def test_optional_became_required_is_breaking() -> None:
    report = compare(model("M", a=(int, 0)), model("M", a=int))
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/a", "optional_became_required", Compatibility.BREAKING),
        ("/properties/a", "default_changed", Compatibility.COMPATIBLE),
    }


def test_required_became_optional_is_compatible() -> None:
    report = compare(model("M", a=int), model("M", a=(int, 0)))
    assert report.compatibility is Compatibility.COMPATIBLE
    assert ("/properties/a", "required_became_optional", Compatibility.COMPATIBLE) in triples(
        report
    )


def test_default_changed_is_compatible() -> None:
    report = compare(model("M", a=(int, 1)), model("M", a=(int, 2)))
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {("/properties/a", "default_changed", Compatibility.COMPATIBLE)}
    assert report.reasons == ["field 'a': default changed (1 -> 2)"]


# -- types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old_type", "new_type"),
    [(str, int), (int, str), (float, int), (str, list[str]), (list[int], dict[str, int])],
)
def test_incompatible_type_change_is_breaking(old_type: Any, new_type: Any) -> None:
    report = compare(model("M", v=old_type), model("M", v=new_type))
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {("/properties/v", "type_changed", Compatibility.BREAKING)}


def test_dropping_null_narrows_the_type() -> None:
    report = compare(model("M", v=str | None), model("M", v=str))
    assert triples(report) == {("/properties/v", "type_changed", Compatibility.BREAKING)}
    assert report.reasons == ["field 'v': no longer accepts null"]


def test_type_list_narrowed_is_breaking() -> None:
    old = {"type": "object", "properties": {"v": {"type": ["string", "null"]}}}
    new = {"type": "object", "properties": {"v": {"type": "string"}}}
    report = compare_schemas(old, new)
    assert triples(report) == {("/properties/v", "type_changed", Compatibility.BREAKING)}


@pytest.mark.parametrize(
    ("old_type", "new_type", "reason"),
    [
        (int, float, "field 'v': type widened from integer to number"),
        (str, str | None, "field 'v': now also accepts null"),
        (int, Any, "field 'v': type widened from integer to any"),
    ],
)
def test_widened_type_is_compatible(old_type: Any, new_type: Any, reason: str) -> None:
    report = compare(model("M", v=old_type), model("M", v=new_type))
    assert report.compatibility is Compatibility.COMPATIBLE
    assert report.reasons == [reason]
    assert report.findings[0].kind == "type_widened"


def test_array_item_type_change_is_breaking() -> None:
    report = compare(model("M", v=list[int]), model("M", v=list[str]))
    assert triples(report) == {("/properties/v/items", "type_changed", Compatibility.BREAKING)}


def test_tuple_position_type_change_is_breaking() -> None:
    report = compare(model("M", v=tuple[int, str]), model("M", v=tuple[int, int]))
    assert triples(report) == {
        ("/properties/v/prefixItems/1", "type_changed", Compatibility.BREAKING)
    }


def test_dict_value_type_widened_is_compatible() -> None:
    report = compare(model("M", v=dict[str, int]), model("M", v=dict[str, float]))
    assert triples(report) == {
        ("/properties/v/additionalProperties", "type_widened", Compatibility.COMPATIBLE)
    }


# -- enums and constants --------------------------------------------------------------------------


def test_literal_value_removed_in_list_items_is_breaking_with_path() -> None:
    report = compare(ChatV1, ChatV2)
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/messages/items/properties/role", "enum_value_removed", Compatibility.BREAKING)
    }
    assert report.reasons == ["field 'messages[].role': value \"system\" removed"]


def test_literal_value_added_is_compatible() -> None:
    report = compare(ChatV2, ChatV1)
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {
        ("/properties/messages/items/properties/role", "enum_value_added", Compatibility.COMPATIBLE)
    }


def test_single_literal_to_two_values_is_enum_value_added() -> None:
    report = compare(model("M", k=Literal["a"]), model("M", k=Literal["a", "b"]))
    assert triples(report) == {("/properties/k", "enum_value_added", Compatibility.COMPATIBLE)}


def test_mixed_type_literal_value_removed_is_enum_value_removed() -> None:
    report = compare(model("M", k=Literal[1, "a"]), model("M", k=Literal[1]))
    assert triples(report) == {("/properties/k", "enum_value_removed", Compatibility.BREAKING)}


def test_const_changed_is_breaking() -> None:
    report = compare(model("M", k=Literal["a"]), model("M", k=Literal["b"]))
    assert triples(report) == {("/properties/k", "const_changed", Compatibility.BREAKING)}


def test_enum_class_member_removed_is_breaking() -> None:
    class Color(StrEnum):
        RED = "red"
        BLUE = "blue"

    class ColorV2(StrEnum):
        RED = "red"

    report = compare(model("M", c=Color), model("M", c=ColorV2))
    assert triples(report) == {("/properties/c", "enum_value_removed", Compatibility.BREAKING)}


# -- constraints ----------------------------------------------------------------------------------

CONSTRAINT_CHANGES = [
    pytest.param(int, Field(ge=0), Field(ge=1), id="minimum-raised"),
    pytest.param(int, Field(ge=0), Field(gt=0), id="minimum-made-exclusive"),
    pytest.param(int, Field(), Field(ge=0), id="minimum-added"),
    pytest.param(int, Field(le=10), Field(le=5), id="maximum-lowered"),
    pytest.param(float, Field(lt=10), Field(lt=9.5), id="exclusive-maximum-lowered"),
    pytest.param(str, Field(max_length=10), Field(max_length=5), id="max-length-lowered"),
    pytest.param(str, Field(min_length=1), Field(min_length=3), id="min-length-raised"),
    pytest.param(str, Field(), Field(pattern="^a"), id="pattern-added"),
    pytest.param(list[int], Field(min_length=1), Field(min_length=2), id="min-items-raised"),
    pytest.param(list[int], Field(max_length=9), Field(max_length=3), id="max-items-lowered"),
    pytest.param(float, Field(multiple_of=0.25), Field(multiple_of=0.5), id="multiple-of"),
    pytest.param(list[int], Field(), Field(json_schema_extra={"uniqueItems": True}), id="unique"),
]


@pytest.mark.parametrize(("annotation", "old_field", "new_field"), CONSTRAINT_CHANGES)
def test_constraint_tightened_is_breaking(annotation: Any, old_field: Any, new_field: Any) -> None:
    report = compare(model("M", v=(annotation, old_field)), model("M", v=(annotation, new_field)))
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {("/properties/v", "constraint_tightened", Compatibility.BREAKING)}


@pytest.mark.parametrize(("annotation", "old_field", "new_field"), CONSTRAINT_CHANGES)
def test_constraint_loosened_is_compatible(annotation: Any, old_field: Any, new_field: Any) -> None:
    report = compare(model("M", v=(annotation, new_field)), model("M", v=(annotation, old_field)))
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {("/properties/v", "constraint_loosened", Compatibility.COMPATIBLE)}


@pytest.mark.parametrize(
    ("annotation", "old_field", "new_field"),
    [
        pytest.param(str, Field(pattern="^a"), Field(pattern="^b"), id="pattern"),
        pytest.param(float, Field(multiple_of=0.5), Field(multiple_of=0.3), id="multiple-of"),
    ],
)
def test_constraint_changed_either_way_is_breaking(
    annotation: Any, old_field: Any, new_field: Any
) -> None:
    for before, after in ((old_field, new_field), (new_field, old_field)):
        report = compare(model("M", v=(annotation, before)), model("M", v=(annotation, after)))
        assert triples(report) == {
            ("/properties/v", "constraint_tightened", Compatibility.BREAKING)
        }


def test_constraint_message_shows_both_bounds() -> None:
    report = compare(model("M", age=(int, Field(ge=0))), model("M", age=(int, Field(ge=18))))
    assert report.reasons == ["field 'age': lower bound tightened (>= 0 -> >= 18)"]


def test_closing_an_open_model_is_breaking() -> None:
    for open_config in (ConfigDict(), ConfigDict(extra="allow")):
        report = compare(model("M", open_config, a=int), model("M", a=int))
        assert triples(report) == {("", "closed", Compatibility.BREAKING)}


def test_opening_a_closed_model_is_compatible() -> None:
    report = compare(model("M", a=int), model("M", ConfigDict(extra="allow"), a=int))
    assert triples(report) == {("", "opened", Compatibility.COMPATIBLE)}


# -- unions ---------------------------------------------------------------------------------------


def test_discriminated_union_variant_added_is_compatible() -> None:
    report = compare(PartsAB, PartsABC)
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {
        ("/properties/part/oneOf/2", "variant_added", Compatibility.COMPATIBLE)
    }
    assert "Audio" in report.reasons[0]


def test_discriminated_union_variant_removed_is_breaking() -> None:
    report = compare(PartsABC, PartsAB)
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/part/oneOf/2", "variant_removed", Compatibility.BREAKING)
    }
    assert "Audio" in report.reasons[0]


def test_discriminated_union_variant_changed_reports_inside_the_variant() -> None:
    image_v2 = model("Image", kind=(Literal["image"], "image"), url=str, alt=str)
    new = model("Parts", part=Annotated[Text | image_v2, Field(discriminator="kind")])
    report = compare(PartsAB, new)
    assert triples(report) == {
        ("/properties/part/oneOf/1/properties/alt", "required_added", Compatibility.BREAKING)
    }


def test_plain_union_variant_added_and_removed() -> None:
    narrow, wide = model("M", v=int | str), model("M", v=int | str | list[int])
    added, removed = compare(narrow, wide), compare(wide, narrow)
    assert triples(added) == {("/properties/v/anyOf/2", "variant_added", Compatibility.COMPATIBLE)}
    assert triples(removed) == {
        ("/properties/v/anyOf/2", "variant_removed", Compatibility.BREAKING)
    }


def test_union_member_widened_is_compatible() -> None:
    report = compare(model("M", v=int | str), model("M", v=float | str))
    assert triples(report) == {("/properties/v/anyOf/0", "type_widened", Compatibility.COMPATIBLE)}


# -- recursion ------------------------------------------------------------------------------------


def test_recursive_model_change_terminates_and_is_reported_once() -> None:
    report = compare(Node, NodeV2)
    assert report.compatibility is Compatibility.COMPATIBLE
    assert triples(report) == {("/properties/label", "field_added", Compatibility.COMPATIBLE)}


def test_recursive_model_narrowed_is_breaking() -> None:
    report = compare(Node, NodeNarrowed)
    assert report.compatibility is Compatibility.BREAKING
    assert triples(report) == {
        ("/properties/value", "constraint_tightened", Compatibility.BREAKING)
    }


def test_mutually_recursive_models_terminate() -> None:
    report = compare(Tree, TreeV2)
    assert triples(report) == {
        ("/properties/branches/items/properties/weight", "type_widened", Compatibility.COMPATIBLE)
    }
    assert compare(TreeV2, Tree).compatibility is Compatibility.BREAKING


# -- keywords the checker does not model -----------------------------------------------------------


def test_unknown_keyword_change_is_breaking() -> None:
    old = model("M", v=(str, Field(json_schema_extra={"not": {"const": "x"}})))
    report = compare(old, model("M", v=str))
    assert triples(report) == {("/properties/v", "keyword_changed", Compatibility.BREAKING)}


def test_vendor_extension_keyword_change_is_none() -> None:
    old = model("M", v=(str, Field(json_schema_extra={"x-ui": "wide"})))
    assert compare(old, model("M", v=str)).findings == ()


def test_unresolvable_ref_is_compared_as_text() -> None:
    remote = {"properties": {"v": {"$ref": "https://example.com/a.json"}}}
    other = {"properties": {"v": {"$ref": "https://example.com/b.json"}}}
    assert compare_schemas(remote, remote).findings == ()
    assert triples(compare_schemas(remote, other)) == {
        ("/properties/v", "keyword_changed", Compatibility.BREAKING)
    }


# -- report and ordering --------------------------------------------------------------------------


def test_compatibility_is_ordered_by_severity() -> None:
    none, compatible, breaking = (
        Compatibility.NONE,
        Compatibility.COMPATIBLE,
        Compatibility.BREAKING,
    )
    assert none < compatible < breaking
    assert breaking > compatible >= compatible > none
    assert max(none, breaking, compatible) is breaking
    assert [c.rank for c in (none, compatible, breaking)] == [0, 1, 2]
    assert breaking == "breaking"


def test_report_is_the_worst_finding_and_reasons_are_in_path_order() -> None:
    old = model("M", a=int, b=(int, 0), c=int)
    new = model("M", a=(int, 0), c=str)
    report = compare(old, new)
    assert report.compatibility is Compatibility.BREAKING
    assert report.required_bump() == "major"
    assert [f.path for f in report.findings] == sorted(f.path for f in report.findings)
    assert report.reasons == [
        "field 'a': default added (0)",
        "field 'a' became optional",
        "field 'b' was removed",
        "field 'c': type changed from integer to string",
    ]


# -- version bumps --------------------------------------------------------------------------------


def breaking_report() -> CompatibilityReport:
    return compare(Params, ParamsNoSeed)


def compatible_report() -> CompatibilityReport:
    return compare(model("M", a=int), model("M", a=int, b=(int, 0)))


NONE_REPORT = CompatibilityReport(Compatibility.NONE, ())


def test_breaking_change_without_major_bump_is_a_problem() -> None:
    problems = check_version_bump("1.2.0", "1.3.0", breaking_report())
    assert len(problems) == 1
    assert "1.2.0" in problems[0]
    assert "1.3.0" in problems[0]
    assert "major" in problems[0]
    assert "field 'seed' was removed" in problems[0]


def test_breaking_change_below_one_without_minor_bump_names_the_fix() -> None:
    assert check_version_bump("0.3.1", "0.3.2", breaking_report()) == [
        "breaking change needs a minor bump below 1.0.0 (field 'seed' was removed), "
        "but 0.3.1 -> 0.3.2 is not one (e.g. 0.4.0)"
    ]


@pytest.mark.parametrize(
    ("old", "new"), [("1.2.0", "2.0.0"), ("1.2.3", "3.0.0"), ("0.3.1", "0.4.0"), ("0.3.1", "1.0.0")]
)
def test_breaking_change_with_major_bump_is_fine(old: str, new: str) -> None:
    assert check_version_bump(old, new, breaking_report()) == []


@pytest.mark.parametrize(
    ("old", "new"), [("0.3.1", "0.3.2"), ("2.0.0", "1.9.0"), ("1.0.0", "1.0.0")]
)
def test_breaking_change_with_patch_or_downgrade_is_a_problem(old: str, new: str) -> None:
    assert len(check_version_bump(old, new, breaking_report())) == 1


def test_compatible_change_with_patch_only_bump_is_a_problem() -> None:
    problems = check_version_bump("1.2.0", "1.2.1", compatible_report())
    assert len(problems) == 1
    assert "1.2.0" in problems[0]
    assert "1.2.1" in problems[0]
    assert "minor" in problems[0]


@pytest.mark.parametrize(
    ("old", "new"), [("1.2.0", "1.3.0"), ("1.2.7", "2.0.0"), ("0.1.0", "0.2.0")]
)
def test_compatible_change_with_minor_or_major_bump_is_fine(old: str, new: str) -> None:
    assert check_version_bump(old, new, compatible_report()) == []


def test_no_change_needs_no_bump() -> None:
    assert check_version_bump("1.2.0", "1.2.0", NONE_REPORT) == []
    assert check_version_bump("1.2.0", "1.2.1", NONE_REPORT) == []


@pytest.mark.parametrize("bad", ["1.2", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.x", ""])
def test_invalid_version_raises(bad: str) -> None:
    expected = f"invalid version '{bad}': it must follow semantic versioning, e.g. 1.0.0"
    with pytest.raises(ValueError, match="invalid version") as caught:
        check_version_bump(bad, "1.0.0", NONE_REPORT)
    assert str(caught.value) == expected
    with pytest.raises(ValueError, match="semantic versioning"):
        check_version_bump("1.0.0", bad, NONE_REPORT)
