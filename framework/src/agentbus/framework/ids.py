"""Ids given by a unique prefix, as every id-taking command accepts them (``f9772c`` for
``f9772c48a1...``): the whole id always works, a prefix only when one id starts with it."""

from __future__ import annotations

from collections.abc import Iterable

from agentbus.framework.errors import ConfigError

SHOWN = 10
"""At most this many candidates are named in an ambiguity error."""


class UnknownId(ConfigError):
    """No id starts with the prefix given."""


class AmbiguousId(ConfigError):
    """More than one id starts with the prefix given; the message names them."""


def by_prefix(prefix: str, ids: Iterable[str], what: str, *, listed_by: str = "") -> str:
    """The one id of ``ids`` that is ``prefix`` or starts with it.

    ``what`` names the kind in messages ("run", "approval"); ``listed_by`` is the command
    that lists them, for the hint when nothing matches."""
    known = sorted(set(ids))
    if prefix in known:
        return prefix
    matches = [i for i in known if i.startswith(prefix)] if prefix else []
    if not matches:
        hint = f"; `{listed_by}` lists them" if listed_by else ""
        raise UnknownId(f"no {what} id is or starts with {prefix!r}{hint}")
    if len(matches) > 1:
        named = ", ".join(matches[:SHOWN]) + (", ..." if len(matches) > SHOWN else "")
        raise AmbiguousId(
            f"{prefix!r} is ambiguous: {len(matches)} {what} ids start with it ({named}); "
            "give more of the id"
        )
    return matches[0]


__all__ = ["AmbiguousId", "UnknownId", "by_prefix"]
