"""Glob patterns matched one name at a time, in linear time, over a descriptor walk.

A pattern (``src/**/test_*.py``) is a list of parts: ``**`` (any number of folders,
none included) or one name pattern (``fnmatch``: ``*``, ``?``, ``[...]``). Matching
keeps the *set* of parts a folder could be at, so ``**/**/**/x`` costs what ``**/x``
costs (no backtracking: each name is checked against each part once), and a folder
whose set cannot lead to a match is not entered (:meth:`Pattern.descend`).

As ``pathlib`` does: names starting with a dot match ``*``; ``**`` as the last part, or
a pattern ending in ``/``, matches folders only (the folder searched itself is never a
match).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath

States = frozenset[int]


class Pattern:
    """A compiled relative glob pattern (no ``..``, not absolute: checked by the caller)."""

    def __init__(self, pattern: str) -> None:
        parts = [part for part in PurePosixPath(pattern).parts if part != "."]
        if not parts:
            raise ValueError("the pattern names nothing; use e.g. * or **/*.py")
        self._parts: list[re.Pattern[str] | None] = [
            None if part == "**" else re.compile(fnmatch.translate(part), re.DOTALL)
            for part in parts
        ]
        self._end = len(self._parts)
        self._folders_only = self._parts[-1] is None or pattern.endswith("/")

    def _closure(self, states: set[int]) -> States:
        """``states`` plus the parts reached by letting a ``**`` match no folder."""
        pending = list(states)
        while pending:
            state = pending.pop()
            if state < self._end and self._parts[state] is None and state + 1 not in states:
                states.add(state + 1)
                pending.append(state + 1)
        return frozenset(states)

    def start(self) -> States:
        return self._closure({0})

    def step(self, states: States, name: str, *, folder: bool) -> States:
        """Where the parts stand after the name ``name`` (a folder's or a file's)."""
        after: set[int] = set()
        for state in states:
            if state == self._end:
                continue
            part = self._parts[state]
            if part is None:
                if folder:
                    after.add(state)  # ** takes this folder and may take more
            elif part.fullmatch(name):
                after.add(state + 1)
        return self._closure(after)

    def matches(self, states: States, *, folder: bool) -> bool:
        return self._end in states and (folder or not self._folders_only)

    def descend(self, states: States) -> bool:
        """Whether something below a folder at ``states`` could still match."""
        return any(state < self._end for state in states)


__all__ = ["Pattern", "States"]
