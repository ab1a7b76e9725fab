"""Each package's ``__all__`` is sorted and names only what the package really exports."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module_name",
    [
        "agentbus.interfaces",
        "agentbus.framework",
        "agentbus.framework.deploy",
        "agentbus.interfaces.catalog",
    ],
)
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert exported == sorted(exported), f"{module_name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name!r}, which is missing"
