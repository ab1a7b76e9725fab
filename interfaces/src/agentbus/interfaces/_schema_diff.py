"""Walking two JSON Schemas side by side: what :func:`agentbus.interfaces.compat.compare_schemas`
runs. Private: the rules are documented (and tested) in ``compat``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from agentbus.interfaces.findings import BREAKING, COMPATIBLE, NONE, Compatibility, Finding

# -- schema helpers ---------------------------------------------------------------------------

_SEVERITY = {
    **dict.fromkeys(
        ("field_removed", "type_changed", "required_added", "optional_became_required",
         "enum_value_removed", "const_changed", "constraint_tightened", "closed",
         "variant_removed", "discriminator_changed", "keyword_changed"),
        BREAKING,
    ),
    **dict.fromkeys(
        ("field_added", "enum_value_added", "constraint_loosened", "type_widened",
         "required_became_optional", "opened", "variant_added", "default_changed"),
        COMPATIBLE,
    ),
}  # fmt: skip
_ANNOTATIONS = frozenset(
    {"title", "description", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
     "$schema", "$id", "$defs", "definitions"}
)  # fmt: skip
_VALUE_KEYWORDS = frozenset(
    {"type", "enum", "const", "properties", "required", "additionalProperties", "items",
     "prefixItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
     "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
     "pattern", "format", "uniqueItems"}
)  # fmt: skip
_KNOWN = _ANNOTATIONS | _VALUE_KEYWORDS | {"default", "anyOf", "oneOf", "discriminator"}
_LIMITS = (  # (inclusive keyword, exclusive keyword, +1 lower / -1 upper bound, what it bounds)
    ("minimum", "exclusiveMinimum", 1, "lower bound"),
    ("maximum", "exclusiveMaximum", -1, "upper bound"),
    ("minLength", "", 1, "minimum length"),
    ("maxLength", "", -1, "maximum length"),
    ("minItems", "", 1, "minimum item count"),
    ("maxItems", "", -1, "maximum item count"),
    ("minProperties", "", 1, "minimum property count"),
    ("maxProperties", "", -1, "maximum property count"),
)
_MISSING: Any = object()
_ANY: Mapping[str, Any] = {}  # one shared "any value" schema (never mutated)
_Bound = tuple[float, bool]  # (sign * limit, exclusive): the larger tuple is the tighter bound
_Variant = tuple[str, Any]  # (path suffix, unresolved schema) of one union member


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _key(schema: Any) -> str:
    """Cycle-guard key: the schema without annotations (so also without the root's $defs)."""
    if isinstance(schema, Mapping):
        schema = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    return _canon(schema)


def _where(path: str) -> str:
    """``/properties/a/items/properties/b`` -> ``field 'a[].b'``."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    label, i = "", 0
    while i < len(parts):
        part, after = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
        if part in ("properties", "prefixItems", "anyOf", "oneOf", "type"):
            label += {"properties": f".{after}", "prefixItems": f"[{after}]"}.get(part, "")
            i += 1
        else:
            label += {"items": "[]", "additionalProperties": ".*"}.get(part, f".{part}")
        i += 1
    return f"field '{label.lstrip('.')}'" if label else "the message"


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    """The JSON types a schema admits; empty means any type."""
    declared = schema.get("type")
    if isinstance(declared, str | list):
        return frozenset(t for t in ([declared] if isinstance(declared, str) else declared))
    names = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (list, "array"), (Mapping, "object"), (type(None), "null"))  # fmt: skip
    values = _values(schema) or []
    return frozenset(next((n for t, n in names if isinstance(v, t)), "?") for v in values)


def _accepts(types: frozenset[str], kind: str) -> bool:
    return not types or kind in types or (kind == "integer" and "number" in types)


def _show_types(types: frozenset[str]) -> str:
    return "|".join(sorted(types)) or "any"


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, sign: int) -> _Bound | None:
    bounds = [
        (sign * float(limit), excl)
        for limit, excl in ((schema.get(inclusive), False), (schema.get(exclusive), True))
        if isinstance(limit, int | float) and not isinstance(limit, bool)
    ]
    return max(bounds, default=None)


def _show_bound(bound: _Bound | None, sign: int) -> str:
    if bound is None:
        return "unbounded"
    return f"{'>' if sign > 0 else '<'}{'' if bound[1] else '='} {sign * bound[0]:g}"


def _extra(schema: Mapping[str, Any]) -> bool | Mapping[str, Any]:
    """``additionalProperties``: False (closed), True (anything) or a schema."""
    value = schema.get("additionalProperties", True)
    return False if value is False else value if isinstance(value, Mapping) and value else True


def _discriminator(schema: Mapping[str, Any]) -> str | None:
    value = schema.get("discriminator")
    name = value.get("propertyName") if isinstance(value, Mapping) else value
    return name if isinstance(name, str) else None


def _has_ref(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    all_of = schema.get("allOf")
    single = isinstance(all_of, list) and len(all_of) == 1 and _has_ref(all_of[0])
    return isinstance(schema.get("$ref"), str) or single


def _pointer(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    node: Any = root if ref.startswith("#") else None
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def _strip(schema: Mapping[str, Any], *keep: str) -> dict[str, Any]:
    """Only the keywords that constrain a value (no annotations, defaults or unions)."""
    return {k: v for k, v in schema.items() if k in _VALUE_KEYWORDS or k in keep}


def _divides(divisor: Any, number: Any) -> bool:
    try:
        return Decimal(str(divisor)) != 0 and Decimal(str(number)) % Decimal(str(divisor)) == 0
    except (InvalidOperation, ValueError):
        return False


# -- the comparison -------------------------------------------------------------------------


class Comparer:
    """One comparison's findings, and the ref pairs in progress or done (the cycle guard)."""

    def __init__(self, roots: tuple[Mapping[str, Any], Mapping[str, Any]]) -> None:
        self.roots = roots
        self.findings: list[Finding] = []
        self.done: dict[tuple[str, str], Compatibility] = {}
        self.active: set[tuple[str, str]] = set()
        self.inherited = NONE  # worst result of ref pairs skipped as already compared

    def fork(self) -> Comparer:
        trial = Comparer(self.roots)
        trial.done, trial.active = dict(self.done), set(self.active)
        return trial

    def adopt(self, trial: Comparer) -> None:
        self.findings += trial.findings
        self.done.update(trial.done)
        self.inherited = max(self.inherited, trial.inherited)

    def worst(self, start: int = 0) -> Compatibility:
        return max([self.inherited, *(f.compatibility for f in self.findings[start:])])

    def add(
        self, path: str, kind: str, detail: str, compatibility: Compatibility | None = None
    ) -> None:
        severity = compatibility or _SEVERITY[kind]
        self.findings.append(Finding(path, kind, severity, _where(path) + detail))

    def resolve(self, schema: Any, side: int) -> dict[str, Any]:
        """Follow ``$ref`` (and one-entry ``allOf``) chains, merging sibling keywords."""
        if not isinstance(schema, Mapping):
            return {} if schema is True else {"not": {}}
        result, seen = dict(schema), set[str]()
        while True:
            all_of = result.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
                result = {**all_of[0], **{k: v for k, v in result.items() if k != "allOf"}}
                continue
            ref = result.get("$ref")
            target = _pointer(self.roots[side], ref) if isinstance(ref, str) else None
            if target is None or ref in seen:
                return result  # unresolvable: "$ref" is then compared as an unknown keyword
            seen.add(str(ref))
            result = {**target, **{k: v for k, v in result.items() if k != "$ref"}}

    def compare(self, old: Any, new: Any, path: str) -> None:
        key = (_key(old), _key(new)) if _has_ref(old) or _has_ref(new) else None
        if key is not None:  # a pair seen again while in progress is a cycle
            if key in self.active:
                return
            if key in self.done:
                self.inherited = max(self.inherited, self.done[key])
                return
            self.active.add(key)
        start, outer, self.inherited = len(self.findings), self.inherited, NONE
        self._compare_resolved(self.resolve(old, 0), self.resolve(new, 1), path)
        local = self.worst(start)
        self.inherited = max(outer, self.inherited)
        if key is not None:
            self.active.discard(key)
            self.done[key] = local

    def _compare_resolved(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        before, after = old.get("default", _MISSING), new.get("default", _MISSING)
        if before is _MISSING and after is not _MISSING:
            self.add(path, "default_changed", f": default added ({_canon(after)})")
        elif after is _MISSING and before is not _MISSING:
            self.add(path, "default_changed", f": default removed (was {_canon(before)})")
        elif _canon(before) != _canon(after):
            self.add(
                path, "default_changed", f": default changed ({_canon(before)} -> {_canon(after)})"
            )
        for kw in sorted((set(old) | set(new)) - _KNOWN):
            before, after = old.get(kw, _MISSING), new.get(kw, _MISSING)
            if not kw.startswith("x-") and (before is _MISSING or before != after):
                verb = (
                    "added" if before is _MISSING else "removed" if after is _MISSING else "changed"
                )
                self.add(path, "keyword_changed", f": keyword '{kw}' {verb}")
        old_tag, new_tag = _discriminator(old), _discriminator(new)
        if old_tag and new_tag and old_tag != new_tag:
            self.add(path, "discriminator_changed", f": tag property '{old_tag}' -> '{new_tag}'")
        old_variants, new_variants = self._variants(old), self._variants(new)
        if old_variants is None and new_variants is None:
            self._compare_value(old, new, path)
        else:
            old_variants = old_variants or [("", _strip(old, "title"))]  # title: identity
            new_variants = new_variants or [("", _strip(new, "title"))]
            self._compare_union(old_variants, new_variants, path, new_tag or old_tag)

    def _variants(self, schema: dict[str, Any]) -> list[_Variant] | None:
        """The members of a union (``anyOf``/``oneOf``/type list); None if not a union."""
        shared = _strip(schema)
        for kw in ("anyOf", "oneOf"):
            if isinstance(members := schema.get(kw), list):
                if isinstance(shared.get("type"), list):
                    del shared["type"]
                merge = bool(shared)  # keywords beside the union apply to every member
                return [(f"/{kw}/{i}", {**shared, **m} if merge and isinstance(m, Mapping) else m)
                        for i, m in enumerate(members)]  # fmt: skip
        if isinstance(types := schema.get("type"), list):
            return [(f"/type/{i}", {**shared, "type": t}) for i, t in enumerate(types)]
        return None

    def _is_null(self, variant: _Variant, side: int) -> bool:
        return _types(self.resolve(variant[1], side)) == {"null"}

    def _describe(self, variant: _Variant, side: int, tag: str | None) -> tuple[str, str]:
        """A member's identity (to pair old members with new ones) and its name for messages."""
        schema = self.resolve(variant[1], side)
        title, types = schema.get("title"), _types(schema)
        name = title if isinstance(title, str) else _show_types(types)
        prop = (schema.get("properties") or {}).get(tag) if tag else None
        if values := _values(self.resolve(prop, side)) if prop is not None else None:
            shown = ", ".join(sorted(_canon(v) for v in values))
            return f"tag {shown}", f"{name} ({tag}={shown})"
        if "object" in types and isinstance(title, str):
            return f"object {title}", name
        return f"type {_show_types(types)}", name

    def _compare_union(
        self, old: list[_Variant], new: list[_Variant], path: str, tag: str | None
    ) -> None:
        old_null = any(self._is_null(v, 0) for v in old)
        new_null = any(self._is_null(v, 1) for v in new)
        if old_null != new_null:
            kind = "type_changed" if old_null else "type_widened"
            self.add(
                path, kind, ": no longer accepts null" if old_null else ": now also accepts null"
            )
        old = [v for v in old if not self._is_null(v, 0)]
        new = [v for v in new if not self._is_null(v, 1)]
        if len(old) == 1 and len(new) == 1:  # X | null on either side: compare X in place
            self.compare(old[0][1], new[0][1], path)
            return
        matched: set[int] = set()
        for suffix, schema in old:  # pair each old member with the new one accepting it best
            identity, name = self._describe((suffix, schema), 0, tag)
            trials = []
            for j, candidate in enumerate(new):
                trial = self.fork()
                trial.compare(schema, candidate[1], path + suffix)
                same = self._describe(candidate, 1, tag)[0] == identity
                trials.append((trial.worst().rank, len(trial.findings), j, same, trial))
            fits = [t for t in trials if t[0] <= COMPATIBLE.rank] or [t for t in trials if t[3]]
            if not fits:
                self.add(path + suffix, "variant_removed", f": variant {name} was removed")
                continue
            best = min(fits, key=lambda t: t[:3])
            matched.add(best[2])
            self.adopt(best[4])
        for j, variant in enumerate(new):
            if j not in matched:
                name = self._describe(variant, 1, tag)[1]
                self.add(path + variant[0], "variant_added", f": variant {name} was added")

    def _compare_value(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_types, new_types = _types(old), _types(new)
        if _values(old) is not None and _values(new) is not None:
            old_types = new_types = frozenset()  # both enumerate their values: those decide
        shown = f"from {_show_types(old_types)} to {_show_types(new_types)}"
        if any(not _accepts(new_types, t) for t in old_types) or (new_types and not old_types):
            self.add(path, "type_changed", f": type changed {shown}")
            return  # the other keywords constrain values the new schema no longer has
        if old_types and (not new_types or any(not _accepts(old_types, t) for t in new_types)):
            self.add(path, "type_widened", f": type widened {shown}")
        self._compare_enum(old, new, path)
        self._compare_constraints(old, new, path)
        if {"properties", "required", "additionalProperties"} & (old.keys() | new.keys()):
            self._compare_object(old, new, path)
        if {"items", "prefixItems"} & (old.keys() | new.keys()):
            self._compare_array(old, new, path)

    def _compare_enum(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_values, new_values = _values(old), _values(new)
        if old_values is None or new_values is None:
            if old_values is not None:
                self.add(path, "constraint_loosened", ": no longer restricted to fixed values")
            elif new_values is not None:
                shown = ", ".join(_canon(v) for v in new_values)
                self.add(path, "constraint_tightened", f": now restricted to {shown}")
            return
        old_keys, new_keys = [_canon(v) for v in old_values], [_canon(v) for v in new_values]
        removed = [k for k in old_keys if k not in new_keys]
        added = [k for k in new_keys if k not in old_keys]
        if removed and "const" in old and "const" in new:
            self.add(path, "const_changed", f": constant changed from {removed[0]} to {added[0]}")
            return
        if removed:
            self.add(path, "enum_value_removed", f": value {', '.join(removed)} removed")
        if added:
            self.add(path, "enum_value_added", f": value {', '.join(added)} added")

    def _constraint(self, path: str, tighter: bool, detail: str) -> None:
        kind = "constraint_tightened" if tighter else "constraint_loosened"
        self.add(path, kind, f": {detail}")

    def _compare_constraints(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        for inclusive, exclusive, sign, what in _LIMITS:
            before = _bound(old, inclusive, exclusive, sign)
            after = _bound(new, inclusive, exclusive, sign)
            if before != after:
                tighter = before is None or (after is not None and after > before)
                shown = f"{_show_bound(before, sign)} -> {_show_bound(after, sign)}"
                verb = "tightened" if tighter else "loosened"
                self._constraint(path, tighter, f"{what} {verb} ({shown})")
        for kw in ("pattern", "format", "multipleOf"):
            before, after = old.get(kw), new.get(kw)
            if before != after:
                multiple = kw == "multipleOf" and before is not None and _divides(after, before)
                verb = "added" if before is None else "removed" if after is None else "changed"
                shown = " -> ".join(repr(v) for v in (before, after) if v is not None)
                self._constraint(path, after is not None and not multiple, f"{kw} {verb} ({shown})")
        if bool(old.get("uniqueItems")) != bool(new.get("uniqueItems")):
            unique = bool(new.get("uniqueItems"))
            self._constraint(
                path, unique, f"items {'must now' if unique else 'need no longer'} be unique"
            )

    def _compare_object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        old_req, new_req = set(old.get("required") or ()), set(new.get("required") or ())
        old_extra, new_extra = _extra(old), _extra(new)
        names = [*old_props, *(n for n in new_props if n not in old_props)]
        for name in [*names, *sorted((old_req | new_req) - set(names))]:
            sub = f"{path}/properties/{name.replace('~', '~0').replace('/', '~1')}"
            in_old, in_new = (
                name in old_props or name in old_req,
                name in new_props or name in new_req,
            )
            if in_old and not in_new:
                closed = new_extra is False
                note = "" if closed else " (still accepted as an extra field)"
                self.add(
                    sub, "field_removed", f" was removed{note}", None if closed else COMPATIBLE
                )
                if isinstance(new_extra, Mapping):
                    self.compare(old_props.get(name, _ANY), new_extra, sub)
            elif in_new and not in_old:
                if name in new_req:
                    self.add(sub, "required_added", " was added as a required field")
                else:
                    self.add(sub, "field_added", " was added (optional)")
            else:
                self.compare(old_props.get(name, _ANY), new_props.get(name, _ANY), sub)
                if name in new_req and name not in old_req:
                    self.add(sub, "optional_became_required", " became required")
                elif name in old_req and name not in new_req:
                    self.add(sub, "required_became_optional", " became optional")
        if old_extra is not False and new_extra is False:
            self.add(path, "closed", ": additional properties are no longer accepted")
        elif old_extra is False and new_extra is not False:
            self.add(path, "opened", ": additional properties are now accepted")
        elif isinstance(old_extra, Mapping) or isinstance(new_extra, Mapping):
            old_schema = old_extra if isinstance(old_extra, Mapping) else _ANY
            new_schema = new_extra if isinstance(new_extra, Mapping) else _ANY
            self.compare(old_schema, new_schema, f"{path}/additionalProperties")

    def _compare_array(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_prefix, new_prefix = old.get("prefixItems") or [], new.get("prefixItems") or []
        old_rest, new_rest = old.get("items", _ANY), new.get("items", _ANY)
        if ("items" in old or "items" in new) and not (old_prefix and "items" not in old):
            self.compare(old_rest, new_rest, f"{path}/items")
        old_max = old.get("maxItems")
        for i in range(max(len(old_prefix), len(new_prefix))):
            sub = f"{path}/prefixItems/{i}"
            if i < len(old_prefix):  # positions past the new prefix are checked by new "items"
                self.compare(old_prefix[i], new_prefix[i] if i < len(new_prefix) else new_rest, sub)
            elif not (isinstance(old_max, int) and old_max <= i):  # old messages can have it
                self.compare(old_rest, new_prefix[i], sub)
