"""Semantic versions of interfaces."""

from __future__ import annotations

import pytest

from agentbus.interfaces.errors import InterfaceError, VersionError
from agentbus.interfaces.semver import Version


def test_parse_and_str_round_trip() -> None:
    version = Version.parse("1.22.333")

    assert (version.major, version.minor, version.patch) == (1, 22, 333)
    assert str(version) == "1.22.333"
    assert Version.parse(" 0.1.0\n") == Version(0, 1, 0)
    assert Version.parse(version) is version


@pytest.mark.parametrize(
    "bad", ["1.0", "1", "v1.0.0", "1.0.0-rc.1", "1.0.0+build", "01.0.0", "1.00.0", "a.b.c", ""]
)
def test_invalid_versions_are_refused(bad: str) -> None:
    with pytest.raises(VersionError, match="semantic versioning"):
        Version.parse(bad)


def test_version_error_is_a_value_error() -> None:
    assert issubclass(VersionError, ValueError)
    assert issubclass(VersionError, InterfaceError)


def test_ordering_is_numeric() -> None:
    assert Version.parse("1.10.0") > Version.parse("1.9.0")
    assert Version.parse("2.0.0") > Version.parse("1.99.99")
    assert Version.parse("0.0.10") > Version.parse("0.0.9")
    assert sorted(map(Version.parse, ["1.10.0", "1.2.0", "1.9.1"])) == [
        Version(1, 2, 0),
        Version(1, 9, 1),
        Version(1, 10, 0),
    ]


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("1.2.3", "1.2.3", "none"),
        ("1.2.3", "1.2.4", "patch"),
        ("1.2.3", "1.3.0", "minor"),
        ("1.2.3", "1.3.7", "minor"),
        ("1.2.3", "2.0.0", "major"),
        ("1.2.3", "1.2.2", "downgrade"),
        ("2.0.0", "1.9.9", "downgrade"),
    ],
)
def test_bump_kind(old: str, new: str, kind: str) -> None:
    assert Version.parse(old).bump_kind(Version.parse(new)) == kind


def test_versions_are_hashable_and_frozen() -> None:
    version = Version(1, 0, 0)
    assert {version: "x"}[Version.parse("1.0.0")] == "x"
    with pytest.raises(AttributeError):
        version.major = 2  # type: ignore[misc]
