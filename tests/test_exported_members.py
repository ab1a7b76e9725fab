"""Each package's ``__all__`` is sorted and names only what the package really exports."""

from __future__ import annotations

import importlib

import pytest


def isort_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions, each A-Z."""
    if name.isupper():
        return 0, name
    return (1 if name[:1].isupper() else 2), name


@pytest.mark.parametrize(
    "module_name",
    [
        "agentbus.interfaces",
        "agentbus.framework",
        "agentbus.framework.cli",
        "agentbus.framework.deploy",
        "agentbus.framework.testing",
        "agentbus.model_gateway.testing",
        "agentbus.interfaces.catalog",
    ],
)
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert exported == sorted(exported, key=isort_order), f"{module_name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name!r}, which is missing"
