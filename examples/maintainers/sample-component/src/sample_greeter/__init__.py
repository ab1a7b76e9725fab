"""The sample component: greetings through greetlib."""

from __future__ import annotations

import greetlib


def greeting(name: str) -> str:
    """``Hello, <name>!``; nobody named means the world."""
    return greetlib.greet(name.strip() or "world")


def greetings(names: list[str]) -> list[str]:
    return [greeting(n) for n in names]
