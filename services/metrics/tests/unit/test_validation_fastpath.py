"""The processors' validation fast path accepts nothing that jsonschema rejects, and
accepts the valid events (`stream/validation.py`): differential, over every contract."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventkit.contracts import SchemaRegistry, SchemaViolation
from jingmin_metrics.stream.validation import FastValidation, compile_schema
from support import case_events

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 1.5, 10**20, float("nan"), "", "x", "p0007",
    "330602", "330602001", "0" * 32, "a" * 33, "2026-03-02T01:30:00+00:00",
    "2026-03-02T01:30:00Z", "2024-02-30T00:00:00Z", "2026-03-02 01:30:00", "2026-13-01",
    "case_resolved", "urgent", "dispatch", [], [""], ["p0007"], [1], {}, {"dispatch": 1},
    {"dispatch": "2026-03-02T01:30:00Z"}, {"nope": "2026-03-02T01:30:00Z"},
]  # fmt: skip


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def _valid(registry: SchemaRegistry, type_: str, data: Any) -> bool:
    return not list(registry.validator(type_).iter_errors(data))


def _samples() -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for i in range(3) for e in case_events(T0 + timedelta(hours=i))]


def _mutations(data: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for key in list(data):
        gone = copy.deepcopy(data)
        del gone[key]
        out.append(gone)
        for odd in ODD_VALUES:
            changed = copy.deepcopy(data)
            changed[key] = copy.deepcopy(odd)
            out.append(changed)
        value = data[key]
        if isinstance(value, dict):
            for odd in ODD_VALUES:
                nested = copy.deepcopy(data)
                nested[key][rng.choice([*value, "dispatch", "zz"])] = copy.deepcopy(odd)
                out.append(nested)
        if isinstance(value, list):
            for odd in ODD_VALUES:
                nested = copy.deepcopy(data)
                nested[key].append(copy.deepcopy(odd))
                out.append(nested)
    for odd in ODD_VALUES:
        extra = copy.deepcopy(data)
        extra["unexpected"] = copy.deepcopy(odd)
        out.append(extra)
    return out


def test_every_event_the_processors_read_has_a_fast_path(registry: SchemaRegistry) -> None:
    fast = FastValidation(registry)
    for type_, data in _samples():
        check = fast.check_for(type_)
        assert check is not None, type_
        assert check(data) and _valid(registry, type_, data), (type_, data)


def test_the_fast_path_accepts_nothing_jsonschema_rejects(registry: SchemaRegistry) -> None:
    rng = random.Random(5)
    fast = FastValidation(registry)
    accepted = rejected = 0
    for type_, data in _samples():
        check = fast.check_for(type_)
        assert check is not None
        for instance in _mutations(data, rng):
            if check(instance):
                accepted += 1
                assert _valid(registry, type_, instance), (type_, instance)
            else:
                rejected += 1
    assert accepted > 100 and rejected > 1000


def test_other_types_schemas_on_random_instances(registry: SchemaRegistry) -> None:
    """Every contract, compiled or not, on instances drawn from the odd values."""
    rng = random.Random(9)
    fast = FastValidation(registry)
    for type_ in sorted(registry.types()):
        check = fast.check_for(type_)
        if check is None:
            continue
        props = list(registry.schema(type_).get("properties", {}))
        for _ in range(300):
            instance = {
                k: copy.deepcopy(rng.choice(ODD_VALUES)) for k in props if rng.random() < 0.8
            }
            if check(instance):
                assert _valid(registry, type_, instance), (type_, instance)


def test_what_the_fast_path_does_not_accept_is_judged_by_the_registry(
    registry: SchemaRegistry,
) -> None:
    fast = FastValidation(registry)
    type_, data = _samples()[0]
    bad = {**data, "bureau": "nope"}
    with pytest.raises(SchemaViolation) as fast_error:
        fast(type_, bad)
    with pytest.raises(SchemaViolation) as slow_error:
        registry.validate(type_, bad)
    assert fast_error.value.errors == slow_error.value.errors
    fast(type_, data)  # valid: no error


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/x"},
        {"oneOf": [{"type": "string"}]},
        {"type": "object", "patternProperties": {"^a": {}}, "additionalProperties": False},
        {"items": [{"type": "string"}], "prefixItems": []},
        {"properties": {"a": False}},
        {"exclusiveMinimum": 1},
        {"unknownKeyword": 1},
    ],
)
def test_keywords_not_handled_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_schema(schema) is None
