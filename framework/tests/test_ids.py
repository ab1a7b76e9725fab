"""Ids by a unique prefix: the whole id, one match, none, or several (named)."""

from __future__ import annotations

import pytest

from agentbus.framework.ids import AmbiguousId, UnknownId, by_prefix

IDS = ["f9772c48a1", "f9772d0000", "a1", "a10"]


def test_a_whole_id_wins_even_when_it_prefixes_another() -> None:
    assert by_prefix("a1", IDS, "run") == "a1"
    assert by_prefix("f9772c", IDS, "run") == "f9772c48a1"


def test_an_ambiguous_prefix_names_the_candidates() -> None:
    with pytest.raises(AmbiguousId, match=r"'f977' is ambiguous: 2 run ids start with it "
                       r"\(f9772c48a1, f9772d0000\); give more of the id"):  # fmt: skip
        by_prefix("f977", IDS, "run")


def test_no_match_and_an_empty_prefix_say_so_with_the_listing_command() -> None:
    for given in ("zz", ""):
        with pytest.raises(UnknownId, match="`runs list` lists them"):
            by_prefix(given, IDS, "run", listed_by="runs list")


def test_many_candidates_are_named_up_to_ten() -> None:
    many = [f"x{i:02d}" for i in range(25)]
    with pytest.raises(AmbiguousId) as refused:
        by_prefix("x", many, "approval")
    assert "25 approval ids" in str(refused.value)
    assert "x09, ..." in str(refused.value)
    assert "x10" not in str(refused.value)
