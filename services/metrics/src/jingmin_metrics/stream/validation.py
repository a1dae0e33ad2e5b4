"""A fast path in front of jsonschema for the processors' hot loop; jsonschema stays the judge.

jsonschema costs about 70 µs per event here, as much as the rest of the processors' own
work. `FastValidation` compiles each event type's schema once into plain Python checks
that accept an instance only where jsonschema certainly accepts it too: every keyword is
checked as jsonschema checks it (`jsonschema/_keywords.py`) or more strictly, formats by
the very same format checker. A schema with a keyword not handled here is not compiled.
Whatever the fast path does not accept (or any error in it) goes to
`SchemaRegistry.validate`, which alone rejects and words the errors. So the processors
accept and dead-letter exactly the events they did before, and valid events, nearly all
of them, skip jsonschema.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

from eventkit.contracts import FORMAT_CHECKER, JSON_SCHEMA_DIALECT, ContractError, SchemaRegistry

Check = Callable[[Any], bool]

# Keywords that assert nothing (no `$ref` is compiled, so `$id` changes nothing either).
_ANNOTATIONS = frozenset(
    {"$id", "$comment", "title", "description", "examples", "default", "deprecated"}
    | {"readOnly", "writeOnly"}
)


def _number_at_least(bound: Any) -> Check:
    def check(x: Any) -> bool:
        if isinstance(x, bool):
            return True  # not a "number" to jsonschema: the keyword ignores it
        if isinstance(x, int | float):
            return bool(x >= bound)
        return not isinstance(x, numbers.Number)  # another kind of number: jsonschema decides

    return check


def _number_at_most(bound: Any) -> Check:
    def check(x: Any) -> bool:
        if isinstance(x, bool):
            return True
        if isinstance(x, int | float):
            return bool(x <= bound)
        return not isinstance(x, numbers.Number)

    return check


# jsonschema's draft 2020-12 types, or a subset of each (integer: no 1.0; number: int, float).
_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "null": lambda x: x is None,
}
_SCALARS = (str, int, bool, type(None))


def _type(value: Any, schema: Mapping[str, Any]) -> Check | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(n in _TYPES for n in names):
        return None
    checks = [_TYPES[n] for n in names]
    return lambda x: any(c(x) for c in checks)


def _enum(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, list):
        return None
    # Same type and equal: then jsonschema's `equal` holds too (it tells bools from ints).
    allowed = [e for e in value if type(e) in _SCALARS]
    return lambda x: any(type(x) is type(e) and x == e for e in allowed)


def _pattern(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, str):
        return None
    search = re.compile(value).search  # what jsonschema's re.search(pattern, x) compiles
    return lambda x: not isinstance(x, str) or search(x) is not None


def _format(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, str):
        return None
    return lambda x: FORMAT_CHECKER.conforms(x, value)


def _length(at_least: bool) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def build(value: Any, schema: Mapping[str, Any]) -> Check | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        if at_least:
            return lambda x: not isinstance(x, str) or len(x) >= value
        return lambda x: not isinstance(x, str) or len(x) <= value

    return build


def _count(at_least: bool) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def build(value: Any, schema: Mapping[str, Any]) -> Check | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        if at_least:
            return lambda x: not isinstance(x, list) or len(x) >= value
        return lambda x: not isinstance(x, list) or len(x) <= value

    return build


def _bound(at_least: bool) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def build(value: Any, schema: Mapping[str, Any]) -> Check | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return _number_at_least(value) if at_least else _number_at_most(value)

    return build


def _required(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        return None
    return lambda x: not isinstance(x, dict) or all(k in x for k in value)


def _properties(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, dict):
        return None
    subs = {k: compile_schema(s) for k, s in value.items()}
    if any(c is None for c in subs.values()):
        return None
    checks: list[tuple[str, Check]] = [(k, c) for k, c in subs.items() if c is not None]

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        return all(c(x[k]) for k, c in checks if k in x)

    return check


def _additional(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if "patternProperties" in schema:
        return None
    declared = frozenset(schema.get("properties") or ())
    if value is True:
        return lambda x: True
    if value is False:
        return lambda x: not isinstance(x, dict) or all(k in declared for k in x)
    sub = compile_schema(value) if isinstance(value, dict) else None
    if sub is None:
        return None
    return lambda x: not isinstance(x, dict) or all(
        sub(v) for k, v in x.items() if k not in declared
    )


def _property_names(value: Any, schema: Mapping[str, Any]) -> Check | None:
    sub = compile_schema(value)
    if sub is None:
        return None
    return lambda x: not isinstance(x, dict) or all(sub(k) for k in x)


def _items(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if "prefixItems" in schema:
        return None
    sub = compile_schema(value)
    if sub is None:
        return None
    return lambda x: not isinstance(x, list) or all(sub(e) for e in x)


_KEYWORDS: dict[str, Callable[[Any, Mapping[str, Any]], Check | None]] = {
    "type": _type,
    "enum": _enum,
    "pattern": _pattern,
    "format": _format,
    "minLength": _length(True),
    "maxLength": _length(False),
    "minItems": _count(True),
    "maxItems": _count(False),
    "minimum": _bound(True),
    "maximum": _bound(False),
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "items": _items,
}


def compile_schema(schema: Any) -> Check | None:
    """A check that accepts only what jsonschema accepts, or None if not compilable."""
    if schema is True:
        return lambda x: True
    if not isinstance(schema, dict):
        return None  # `false`, or not a schema: jsonschema decides
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        build = _KEYWORDS.get(keyword)
        check = build(value, schema) if build is not None else None
        if check is None:
            return None
        checks.append(check)
    return lambda x: all(c(x) for c in checks)


class FastValidation:
    """`SchemaRegistry.validate`, with the compiled fast path in front of it."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._checks: dict[str, Check | None] = {}

    def check_for(self, type_: str) -> Check | None:
        try:
            return self._checks[type_]
        except KeyError:
            pass
        try:
            schema = self._registry.schema(type_)
        except ContractError:
            schema = None  # validate() says why
        fast = None
        # Another dialect would make jsonschema use another validator class.
        if isinstance(schema, dict) and schema.get("$schema", JSON_SCHEMA_DIALECT) == (
            JSON_SCHEMA_DIALECT
        ):
            fast = compile_schema({k: v for k, v in schema.items() if k != "$schema"})
        self._checks[type_] = fast
        return fast

    def __call__(self, type_: str, data: Mapping[str, Any]) -> None:
        fast = self.check_for(type_)
        if fast is not None:
            try:
                if fast(data if isinstance(data, dict) else dict(data)):
                    return
            except Exception:
                pass
        self._registry.validate(type_, data)
