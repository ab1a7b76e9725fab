"""The vocabulary of a schema comparison: how bad a change is, and one difference found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_ORDER = ("none", "compatible", "breaking")


class Compatibility(StrEnum):
    """How a schema change affects the wire; ordered NONE < COMPATIBLE < BREAKING."""

    NONE = "none"
    COMPATIBLE = "compatible"
    BREAKING = "breaking"

    @property
    def rank(self) -> int:
        return _ORDER.index(self.value)

    def __lt__(self, other: object) -> bool:
        return self.rank < other.rank if isinstance(other, Compatibility) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.rank <= other.rank if isinstance(other, Compatibility) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.rank > other.rank if isinstance(other, Compatibility) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.rank >= other.rank if isinstance(other, Compatibility) else NotImplemented


NONE, COMPATIBLE, BREAKING = Compatibility.NONE, Compatibility.COMPATIBLE, Compatibility.BREAKING


@dataclass(frozen=True)
class Finding:
    """One difference between the old and the new schema."""

    path: str
    kind: str
    compatibility: Compatibility
    message: str
