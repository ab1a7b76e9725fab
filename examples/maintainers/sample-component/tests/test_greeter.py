"""The sample component's tests: the maintainer runs them on the old and the new version."""

from sample_greeter import greeting, greetings


def test_greets_by_name() -> None:
    assert greeting("Ada") == "Hello, Ada!"


def test_greets_the_world_when_nobody_is_named() -> None:
    assert greeting("  ") == "Hello, world!"


def test_greets_everyone() -> None:
    assert greetings(["Ada", "Grace"]) == ["Hello, Ada!", "Hello, Grace!"]
