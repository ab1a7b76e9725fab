"""Semantic versions of interfaces (``MAJOR.MINOR.PATCH``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agentbus.interfaces.errors import VersionError

_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

BumpKind = Literal["none", "patch", "minor", "major", "downgrade"]


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """A semantic version; ordering is numeric, field by field."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        if isinstance(text, Version):
            return text
        match = _VERSION_RE.match(text.strip())
        if match is None:
            raise VersionError(
                f"invalid version {text!r}: it must follow semantic versioning, e.g. 1.0.0"
            )
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def bump_kind(self, newer: Version) -> BumpKind:
        """How ``newer`` differs from this version."""
        if newer == self:
            return "none"
        if newer < self:
            return "downgrade"
        if newer.major != self.major:
            return "major"
        if newer.minor != self.minor:
            return "minor"
        return "patch"
