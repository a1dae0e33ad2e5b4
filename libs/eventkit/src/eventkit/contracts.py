"""Integration-event contracts: the JSON Schema registry, compatibility rules and AsyncAPI docs."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for

if TYPE_CHECKING:
    from eventkit.service import ServiceSpec, TopicSpec

CONTRACTS_ENV = "JINGMIN_CONTRACTS_DIR"
DATASCHEMA_PREFIX = "urn:jingmin:schema:"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
KAFKA_BINDING_VERSION = "0.5.0"

# jingmin.<context>.<EventName>.v<N>, and its file contracts/<context>/<EventName>.v<N>.json.
TYPE_RE = re.compile(
    r"^jingmin\.(?P<context>[a-z][a-z0-9_-]*)\.(?P<event>[A-Z][A-Za-z0-9]*)"
    r"\.v(?P<version>[1-9][0-9]*)$"
)
FILE_RE = re.compile(r"^(?P<event>[A-Z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.json$")
_CONTEXT_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
# contracts/tools holds the Node validator, not a bounded context.
_NOT_CONTEXTS = frozenset({"tools", "node_modules"})


class ContractError(Exception):
    """Base class for contract failures."""


class UnknownType(ContractError, LookupError):
    """An event type with no schema in the registry: it was never declared."""

    def __init__(self, type_: str) -> None:
        self.type = type_
        super().__init__(f"{type_}: no schema declared for this event type")


class SchemaViolation(ContractError, ValueError):
    """Event data that does not match its declared schema."""

    def __init__(self, type_: str, errors: list[str]) -> None:
        self.type = type_
        self.errors = errors
        super().__init__(f"{type_}: " + "; ".join(errors))


@dataclass(frozen=True)
class EventTypeName:
    context: str
    event: str
    version: int

    @property
    def type(self) -> str:
        return f"jingmin.{self.context}.{self.event}.v{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.event}.v{self.version}.json"


def parse_type(type_: str) -> EventTypeName:
    match = TYPE_RE.match(type_)
    if match is None:
        raise ValueError(f"{type_!r} is not a versioned type like jingmin.intake.CaseReceived.v1")
    return EventTypeName(match["context"], match["event"], int(match["version"]))


def dataschema_urn(type_: str) -> str:
    return DATASCHEMA_PREFIX + type_


def type_for_file(path: Path) -> str | None:
    """The event type a schema file declares by its place, or None if it is not a schema file."""
    match = FILE_RE.match(path.name)
    if match is None or not _CONTEXT_RE.match(path.parent.name):
        return None
    return f"jingmin.{path.parent.name}.{match['event']}.v{match['version']}"


def _context_dirs(contracts_dir: Path) -> list[Path]:
    if not contracts_dir.is_dir():
        return []
    return sorted(
        p
        for p in contracts_dir.iterdir()
        if p.is_dir() and p.name not in _NOT_CONTEXTS and _CONTEXT_RE.match(p.name)
    )


def _schema_files(contracts_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for context in _context_dirs(contracts_dir):
        for path in sorted(context.glob("*.json")):
            type_ = type_for_file(path)
            if type_ is not None:
                found[type_] = path
    return found


def find_contracts_dir() -> Path:
    """`$JINGMIN_CONTRACTS_DIR`, else the nearest `contracts/` holding schemas above cwd or here."""
    configured = os.environ.get(CONTRACTS_ENV)
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise FileNotFoundError(f"{CONTRACTS_ENV}={configured} is not a directory")
        return path
    starts = (Path.cwd().resolve(), Path(__file__).resolve().parent)
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / "contracts"
            if candidate.is_dir() and _schema_files(candidate):
                return candidate
    raise FileNotFoundError(
        f"no contracts/ directory with schema files above {starts[0]} or {starts[1]}; "
        f"set {CONTRACTS_ENV}"
    )


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # rejects 2024-02-30
    return True


def _strict_format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    # jsonschema checks date-time only when rfc3339-validator is installed and silently passes
    # otherwise; the metrics are computed from these timestamps, so always check them.
    checker.checkers["date-time"] = (_is_date_time, ValueError)
    return checker


FORMAT_CHECKER = _strict_format_checker()


class SchemaRegistry:
    """Schemas by event type, with one compiled validator per type built on first use."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._schemas: dict[str, dict[str, Any]] = {}
        self._paths: dict[str, Path] = {}
        self._validators: dict[str, Any] = {}

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """Every `<context>/<EventName>.v<N>.json` under `directory` (default: find it)."""
        root = directory if directory is not None else find_contracts_dir()
        registry = cls(root)
        for type_, path in _schema_files(root).items():
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ContractError(f"{path}: not JSON: {exc}") from exc
            registry.add(type_, schema, path)
        return registry

    def add(self, type_: str, schema: Mapping[str, Any], path: Path | None = None) -> None:
        self._schemas[type_] = dict(schema)
        self._validators.pop(type_, None)
        if path is not None:
            self._paths[type_] = path

    def types(self) -> set[str]:
        return set(self._schemas)

    def __contains__(self, type_: object) -> bool:
        return type_ in self._schemas

    def schema(self, type_: str) -> dict[str, Any]:
        # A copy, so a caller editing it cannot desynchronise the cached validator.
        return copy.deepcopy(self._raw(type_))

    def path(self, type_: str) -> Path | None:
        self._raw(type_)
        return self._paths.get(type_)

    def dataschema_for(self, type_: str) -> str:
        """The `ce_dataschema` URN; raises UnknownType so nothing undeclared gets published."""
        self._raw(type_)
        return dataschema_urn(type_)

    def validator(self, type_: str) -> Any:
        cached = self._validators.get(type_)
        if cached is None:
            schema = self._raw(type_)
            cls = validator_for(schema, default=Draft202012Validator)
            cached = self._validators[type_] = cls(schema, format_checker=FORMAT_CHECKER)
        return cached

    def validate(self, type_: str, data: Mapping[str, Any]) -> None:
        """Raise SchemaViolation (errors name the JSON path) unless `data` fits the schema."""
        validator = self.validator(type_)
        # jsonschema's "object" is `dict` only; other mappings would fail the type check.
        instance = data if isinstance(data, dict) else dict(data)
        errors = list(validator.iter_errors(instance))
        if errors:
            errors.sort(key=lambda e: (e.json_path, e.message))
            raise SchemaViolation(type_, [f"{e.json_path}: {e.message}" for e in errors])

    def _raw(self, type_: str) -> dict[str, Any]:
        try:
            return self._schemas[type_]
        except KeyError:
            raise UnknownType(type_) from None


# ---------------------------------------------------------------------------------------------
# Backward compatibility: every message valid under `old` must be valid under `new`.

# Keywords that never change which instances are valid.
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
    }
)
_HANDLED = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "pattern",
        "anyOf",
        "oneOf",
        "propertyNames",
    }
)
_LOWER_COUNTS = ("minLength", "minItems", "minProperties")
_UPPER_COUNTS = ("maxLength", "maxItems", "maxProperties")


def check_compatibility(old: Mapping[str, Any] | bool, new: Mapping[str, Any] | bool) -> list[str]:
    """Breaking changes from `old` to `new`, each as "<JSON path>: <what broke>".

    Backward in Confluent's sense: a consumer reading with `new` must accept every message
    written with `old`. Adding an optional property is allowed even to an open object, as
    Confluent's BACKWARD mode does for optional fields: our writers validate every message
    against their schema before it leaves, so an undeclared field never reaches a topic.
    """
    return _Compat(old, new).run()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _same_value(a: Any, b: Any) -> bool:
    # JSON Schema equality: 1 == 1.0, but true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _show(values: Iterable[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def _show_types(types: set[str]) -> str:
    ordered = sorted(types)
    return json.dumps(ordered[0] if len(ordered) == 1 else ordered)


def _child(path: str, name: str) -> str:
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        return f"{path}.{name}"
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


class _Compat:
    def __init__(self, old: Mapping[str, Any] | bool, new: Mapping[str, Any] | bool) -> None:
        self.old_root = old
        self.new_root = new
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()
        # Holds every compared node so no id() in _seen is reused by a later object.
        self._alive: list[Any] = []

    def run(self) -> list[str]:
        self.compare(self.old_root, self.new_root, "$")
        # One change can be reached through two routes (a $ref used twice); say it once.
        return list(dict.fromkeys(self.problems))

    def report(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def resolve(self, node: Any, root: Any, path: str) -> Any:
        hops = 0
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                self.report(path, f"cannot follow non-local $ref {ref!r}")
                return True
            target: Any = root
            for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, Mapping) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    self.report(path, f"$ref {ref!r} does not resolve")
                    return True
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            # Without siblings keep the target itself, so a recursive $ref meets a node
            # already seen and the walk ends.
            node = {**target, **siblings} if siblings and isinstance(target, Mapping) else target
            hops += 1
            if hops > 50:
                self.report(path, f"$ref {ref!r} loops")
                return True
        return node

    def compare(self, old: Any, new: Any, path: str, depth: int = 0) -> None:
        old = self.resolve(old, self.old_root, path)
        new = self.resolve(new, self.new_root, path)
        # A pair already compared gave its verdict at a shallower path; comparing it again
        # would only repeat it, and for recursive schemas never terminate.
        key = (id(old), id(new))
        if key in self._seen or depth > 64:
            return
        self._seen.add(key)
        self._alive.append((old, new))

        if old is False or new is True:
            return
        if new is False:
            self.report(path, "now rejects every value")
            return
        if old is True:
            old = {}
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            self.report(path, "schema is neither an object nor a boolean")
            return

        old_alts = old.get("anyOf") or old.get("oneOf")
        if isinstance(old_alts, list):
            rest = {k: v for k, v in old.items() if k not in ("anyOf", "oneOf")}
            for alt in old_alts:
                alt = self.resolve(alt, self.old_root, path)
                merged = {**rest, **alt} if rest and isinstance(alt, Mapping) else alt
                self.compare(merged, new, path, depth + 1)
            return
        new_alts = new.get("anyOf") or new.get("oneOf")
        if isinstance(new_alts, list):
            self.compare_to_alternatives(old, new, new_alts, path, depth)
            return
        self.compare_simple(old, new, path, depth)

    def compare_to_alternatives(
        self, old: Mapping[str, Any], new: Mapping[str, Any], alts: list[Any], path: str, depth: int
    ) -> None:
        old_types = self.types(old)
        if old_types is not None and len(old_types) > 1:
            # {"type": ["string", "null"]} → anyOf [string, null]: match each type on its own.
            for t in sorted(old_types):
                self.compare({**old, "type": t}, new, path, depth + 1)
            return
        rest = {k: v for k, v in new.items() if k not in ("anyOf", "oneOf")}
        attempts: list[list[str]] = []
        for alt in alts:
            alt = self.resolve(alt, self.new_root, path)
            merged = {**rest, **alt} if rest and isinstance(alt, Mapping) else alt
            trial = _Compat(self.old_root, self.new_root)
            trial._seen = set(self._seen)
            trial.compare(old, merged, path, depth + 1)
            if not trial.problems:
                return
            attempts.append(trial.problems)
        if len(attempts) == 1:
            self.problems.extend(attempts[0])
        else:
            closest = min(attempts, key=len) if attempts else []
            detail = f" (closest: {'; '.join(closest)})" if closest else ""
            self.report(
                path, f"no alternative of the new anyOf/oneOf accepts the old schema{detail}"
            )

    @staticmethod
    def types(schema: Mapping[str, Any]) -> set[str] | None:
        declared = schema.get("type")
        if isinstance(declared, str):
            return {declared}
        if isinstance(declared, list):
            return {t for t in declared if isinstance(t, str)}
        if "const" in schema:
            return {_json_type(schema["const"])}
        if isinstance(schema.get("enum"), list):
            return {_json_type(v) for v in schema["enum"]}
        return None

    def compare_simple(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, depth: int
    ) -> None:
        old_types = self.types(old)
        new_types = self.types(new)
        if "type" in new and new_types is not None:
            if old_types is None:
                self.report(
                    path,
                    f"type restricted to {_show_types(new_types)} (old schema accepted any type)",
                )
            else:
                lost = sorted(
                    t
                    for t in old_types
                    if t not in new_types and not (t == "integer" and "number" in new_types)
                )
                if lost:
                    self.report(
                        path,
                        f"type narrowed from {_show_types(old_types)} to {_show_types(new_types)}",
                    )

        self.compare_values(old, new, path)
        self.compare_bounds(old, new, path)

        for keyword in ("pattern", "format"):
            if keyword in new and new[keyword] != old.get(keyword):
                if keyword in old:
                    self.report(
                        path,
                        f"{keyword} changed from {json.dumps(old[keyword])} "
                        f"to {json.dumps(new[keyword])}",
                    )
                else:
                    self.report(path, f"{keyword} {json.dumps(new[keyword])} added")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            self.report(path, "uniqueItems added")

        def may_be(t: str) -> bool:
            return (old_types is None or t in old_types) and (new_types is None or t in new_types)

        if may_be("object"):
            self.compare_objects(old, new, path, depth)
        if may_be("array"):
            self.compare(old.get("items", True), new.get("items", True), f"{path}[*]", depth + 1)

        for keyword in sorted(set(new) - _ANNOTATIONS - _HANDLED):
            if keyword.startswith("x-"):
                continue
            if keyword not in old or old[keyword] != new[keyword]:
                self.report(
                    path,
                    f"keyword {keyword!r} is outside what contracts-check can "
                    "compare; keep it unchanged or check compatibility by hand",
                )

    def compare_values(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        def allowed(schema: Mapping[str, Any]) -> list[Any] | None:
            if "const" in schema:
                return [schema["const"]]
            enum = schema.get("enum")
            return list(enum) if isinstance(enum, list) else None

        new_values = allowed(new)
        if new_values is None:
            return
        old_values = allowed(old)
        keyword = "const" if "const" in new else "enum"
        if old_values is None:
            self.report(
                path, f"{keyword} {_show(new_values)} added (old schema allowed other values)"
            )
            return
        removed = [v for v in old_values if not any(_same_value(v, w) for w in new_values)]
        if removed:
            self.report(path, f"{keyword} no longer allows {_show(removed)}")

    def compare_bounds(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        for side in ("minimum", "maximum"):
            old_b, new_b = _bound(old, side), _bound(new, side)
            if new_b is None:
                continue
            if old_b is None:
                self.report(path, f"{_describe_bound(side, new_b)} added")
            elif _tighter(side, old_b, new_b):
                self.report(
                    path,
                    f"{side} tightened from {_describe_bound(side, old_b)} "
                    f"to {_describe_bound(side, new_b)}",
                )
        for keyword in (*_LOWER_COUNTS, *_UPPER_COUNTS):
            if keyword not in new:
                continue
            if keyword not in old:
                self.report(path, f"{keyword} {new[keyword]} added")
            elif (new[keyword] > old[keyword]) == (keyword in _LOWER_COUNTS) and new[
                keyword
            ] != old[keyword]:
                self.report(path, f"{keyword} tightened from {old[keyword]} to {new[keyword]}")
        if "multipleOf" in new:
            old_step = old.get("multipleOf")
            if old_step is None or not _is_multiple(old_step, new["multipleOf"]):
                self.report(path, f"multipleOf {new['multipleOf']} added or changed")

    def compare_objects(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, depth: int
    ) -> None:
        old_props: Mapping[str, Any] = old.get("properties") or {}
        new_props: Mapping[str, Any] = new.get("properties") or {}
        old_required = set(old.get("required") or ())
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)

        for name in new.get("required") or ():
            if name not in old_required:
                self.report(
                    _child(path, name),
                    "property became required (messages written with the old schema may lack it)",
                )
        for name, old_prop in old_props.items():
            child = _child(path, name)
            if name in new_props:
                self.compare(old_prop, new_props[name], child, depth + 1)
            elif new_extra is False:
                self.report(
                    child,
                    "property removed while additionalProperties is false "
                    "(messages written with the old schema may carry it)",
                )
            else:
                self.compare(old_prop, new_extra, child, depth + 1)
        for name, new_prop in new_props.items():
            # Old messages carry an undeclared property only through additionalProperties.
            if name not in old_props and isinstance(old_extra, Mapping):
                self.compare(old_extra, new_prop, _child(path, name), depth + 1)
        if "propertyNames" in new:
            self.compare(
                _key_schema(old.get("propertyNames", True)),
                _key_schema(new["propertyNames"]),
                f"{path} (property names)",
                depth + 1,
            )
        if new_extra is False and old_extra is not False:
            self.report(
                path,
                "additionalProperties closed (messages written with the old "
                "schema may carry other properties)",
            )
        elif new_extra is not True:
            self.compare(old_extra, new_extra, f"{path}.*", depth + 1)


def _key_schema(schema: Any) -> Any:
    # Property names are always strings, so "type": "string" on them narrows nothing.
    if schema is True:
        return {"type": "string"}
    if isinstance(schema, Mapping) and "type" not in schema and "$ref" not in schema:
        return {**schema, "type": "string"}
    return schema


def _bound(schema: Mapping[str, Any], side: str) -> tuple[float, bool] | None:
    """The effective (value, exclusive) lower or upper bound, whichever keyword is tighter."""
    inclusive = schema.get(side)
    exclusive = schema.get("exclusiveMinimum" if side == "minimum" else "exclusiveMaximum")
    candidates: list[tuple[float, bool]] = []
    if isinstance(inclusive, (int, float)) and not isinstance(inclusive, bool):
        candidates.append((float(inclusive), False))
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
        candidates.append((float(exclusive), True))
    if not candidates:
        return None
    tightest = candidates[0]
    for candidate in candidates[1:]:
        if _tighter(side, tightest, candidate):
            tightest = candidate
    return tightest


def _tighter(side: str, old: tuple[float, bool], new: tuple[float, bool]) -> bool:
    if old[0] == new[0]:
        return new[1] and not old[1]
    return new[0] > old[0] if side == "minimum" else new[0] < old[0]


def _describe_bound(side: str, bound: tuple[float, bool]) -> str:
    value = int(bound[0]) if bound[0].is_integer() else bound[0]
    op = (">" if bound[1] else ">=") if side == "minimum" else ("<" if bound[1] else "<=")
    return f"{op} {value}"


def _is_multiple(old_step: Any, new_step: Any) -> bool:
    try:
        ratio = float(old_step) / float(new_step)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isclose(ratio, round(ratio)) and round(ratio) >= 1


# ---------------------------------------------------------------------------------------------
# contracts-check

Previous = Callable[[Path], dict[str, Any] | None]


def git_head_version(path: Path) -> dict[str, Any] | None:
    """The file as committed at git HEAD, or None when it is new, untracked or not in git."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{path.name}"],
            cwd=path.parent,
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0:
        return None
    try:
        content = json.loads(shown.stdout)
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def all_emitted_types(specs: Iterable[object]) -> set[str]:
    """Every event type the given service specs declare they publish."""
    types: set[str] = set()
    for spec in specs:
        types.update(getattr(spec, "event_types", ()))
    return types


def contracts_check(
    contracts_dir: Path, emitted_types: Iterable[str], previous: Previous | None = None
) -> list[str]:
    """Every problem with the contracts, as readable lines; an empty list means all is well."""
    previous = git_head_version if previous is None else previous
    problems: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    files = _schema_files(contracts_dir)

    def show(path: Path) -> str:
        try:
            return path.relative_to(contracts_dir).as_posix()
        except ValueError:
            return str(path)

    for context in _context_dirs(contracts_dir):
        for path in sorted(context.glob("*.json")):
            if type_for_file(path) is None:
                problems.append(f"{show(path)}: not named <EventName>.v<N>.json")

    for type_, path in files.items():
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"{show(path)}: not JSON: {exc}")
            continue
        if not isinstance(schema, dict):
            problems.append(f"{show(path)}: a schema file must hold a JSON object")
            continue
        problems.extend(f"{show(path)}: {p}" for p in _schema_problems(type_, schema))
        schemas[type_] = schema

    for type_ in sorted(set(emitted_types)):
        if not TYPE_RE.match(type_):
            problems.append(
                f"{type_}: emitted type is not named like jingmin.<context>.<EventName>.v<N>"
            )
        elif type_ not in files:
            name = parse_type(type_)
            problems.append(f"{type_}: emitted but undeclared (no {name.context}/{name.filename})")

    by_event: dict[tuple[str, str], list[EventTypeName]] = {}
    for type_ in schemas:
        name = parse_type(type_)
        by_event.setdefault((name.context, name.event), []).append(name)
    for versions in by_event.values():
        versions.sort(key=lambda n: n.version)
        for i, newer in enumerate(versions):
            for older in versions[:i]:
                for p in check_compatibility(schemas[older.type], schemas[newer.type]):
                    problems.append(
                        f"{newer.type} is not backward compatible with v{older.version}: {p}"
                    )

    for type_, schema in schemas.items():
        before = previous(files[type_])
        if before is not None and before != schema:
            for p in check_compatibility(before, schema):
                problems.append(
                    f"{show(files[type_])} changed incompatibly since it was published: {p}"
                )

    for context in _context_dirs(contracts_dir):
        problems.extend(_asyncapi_problems(context, files, show))
    return problems


def _schema_problems(type_: str, schema: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    expected = dataschema_urn(type_)
    if schema.get("$id") != expected:
        problems.append(f"$id is {schema.get('$id')!r}, expected {expected!r}")
    if schema.get("$schema") != JSON_SCHEMA_DIALECT:
        problems.append(f"$schema must be {JSON_SCHEMA_DIALECT!r}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        problems.append(f"not a valid JSON Schema at {where}: {exc.message}")
    # The envelope only carries JSON objects as data.
    if schema.get("type") != "object":
        problems.append('the data schema must have "type": "object"')
    return problems


def _asyncapi_problems(
    context: Path, files: Mapping[str, Path], show: Callable[[Path], str]
) -> list[str]:
    doc_path = context / ASYNCAPI_FILE
    own = {t: p for t, p in files.items() if p.parent == context}
    if not doc_path.exists():
        # One service may publish two contexts' types (complaints also sends supervision
        # events): its single document then covers the other context's schema files.
        uncovered = set(own) - _carried_by_other_documents(context, files)
        return [f"{show(doc_path)}: missing"] if uncovered else []
    try:
        doc = yaml.safe_load(doc_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return [f"{show(doc_path)}: not YAML: {exc}"]
    if not isinstance(doc, dict):
        return [f"{show(doc_path)}: not an AsyncAPI document"]

    problems: list[str] = []
    where = show(doc_path)
    by_path = {p.resolve(): t for t, p in files.items()}
    by_urn = {dataschema_urn(t): t for t in files}
    covered: set[str] = set()

    for label, message in _asyncapi_messages(doc):
        if not isinstance(message, dict):
            problems.append(f"{where}: message {label} is not an object or local $ref")
            continue
        payload = message.get("payload")
        if isinstance(payload, dict) and "schema" in payload and "schemaFormat" in payload:
            payload = payload["schema"]
        carried: str | None = None
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("$ref"), str)
            and not payload["$ref"].startswith("#")
        ):
            target = (context / payload["$ref"].split("#", 1)[0]).resolve()
            carried = by_path.get(target)
            if carried is None:
                problems.append(
                    f"{where}: message {label} refers to {payload['$ref']}, "
                    "which is not a schema file"
                )
        elif isinstance(payload, dict) and isinstance(payload.get("$id"), str):
            carried = by_urn.get(payload["$id"])
            if carried is None:
                problems.append(
                    f"{where}: message {label} inlines {payload['$id']}, which has no schema file"
                )
        else:
            problems.append(
                f"{where}: message {label} payload neither refers to a schema "
                "file nor inlines one with its $id"
            )
        if carried is None:
            continue
        covered.add(carried)
        declared = _header_const(message, "ce_type")
        if declared is not None and declared != carried:
            problems.append(
                f"{where}: message {label} says ce_type {declared!r} but carries {carried}"
            )

    for type_, path in sorted(own.items()):
        if type_ not in covered:
            problems.append(f"{where}: {show(path)} is not in any message")
    return problems


def _carried_by_other_documents(context: Path, files: Mapping[str, Path]) -> set[str]:
    """Types whose schema files another context's AsyncAPI document refers to."""
    by_path = {p.resolve(): t for t, p in files.items()}
    carried: set[str] = set()
    for other in _context_dirs(context.parent):
        doc_path = other / ASYNCAPI_FILE
        if other == context or not doc_path.exists():
            continue
        try:
            doc = yaml.safe_load(doc_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue  # reported when that context is checked
        if not isinstance(doc, dict):
            continue
        for _label, message in _asyncapi_messages(doc):
            payload = message.get("payload") if isinstance(message, dict) else None
            if isinstance(payload, dict) and "schema" in payload and "schemaFormat" in payload:
                payload = payload["schema"]
            if isinstance(payload, dict) and isinstance(payload.get("$ref"), str):
                target = (other / payload["$ref"].split("#", 1)[0]).resolve()
                if target in by_path:
                    carried.add(by_path[target])
    return carried


def _asyncapi_messages(doc: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, message object) for every message in channels and components, refs resolved."""
    found: list[tuple[str, Any]] = []
    components = doc.get("components") or {}
    for name, message in (components.get("messages") or {}).items():
        found.append((f"components.messages.{name}", message))
    for channel_name, channel in (doc.get("channels") or {}).items():
        if not isinstance(channel, dict):
            continue
        for name, message in (channel.get("messages") or {}).items():
            found.append((f"channels.{channel_name}.messages.{name}", message))

    resolved: list[tuple[str, Any]] = []
    visited: set[int] = set()
    for label, message in found:
        for _ in range(10):
            if not (isinstance(message, dict) and isinstance(message.get("$ref"), str)):
                break
            ref = message["$ref"]
            if not ref.startswith("#/"):
                message = None
                break
            target: Any = doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            message = target
        # A channel usually points at a component message: check each message once.
        if message is not None and id(message) in visited:
            continue
        visited.add(id(message))
        resolved.append((label, message))
    return resolved


def _header_const(message: Mapping[str, Any], header: str) -> Any:
    headers = message.get("headers")
    if isinstance(headers, dict) and "schema" in headers and "schemaFormat" in headers:
        headers = headers["schema"]
    if not isinstance(headers, dict):
        return None
    prop = (headers.get("properties") or {}).get(header)
    return prop.get("const") if isinstance(prop, dict) else None


# ---------------------------------------------------------------------------------------------
# AsyncAPI generation


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", **schema, "description": description}


def cloudevents_headers(type_: str) -> dict[str, Any]:
    """The binary-mode CloudEvents Kafka headers of one message type, as a JSON Schema."""
    properties = {
        "ce_id": _header("Unique event id; consumers deduplicate on it.", format="uuid"),
        "ce_source": _header("URI reference of the producing service.", format="uri-reference"),
        "ce_type": _header("Versioned integration event type.", const=type_),
        "ce_specversion": _header("CloudEvents specification version.", const="1.0"),
        "ce_subject": _header("The aggregate the event is about."),
        "ce_time": _header("When the fact happened (RFC 3339).", format="date-time"),
        "ce_dataschema": _header("Schema of the body.", const=dataschema_urn(type_)),
        "ce_bureau": _header("Police bureau the event belongs to."),
        "ce_streamid": _header("Event-store stream (aggregate) id; also the Kafka key."),
        "ce_streamversion": _header(
            "Version of the stream after this event (decimal).", pattern="^[1-9][0-9]*$"
        ),
        "ce_correlationid": _header("Id shared by every event of one user request."),
        "ce_causationid": _header("Id of the message that caused this one."),
        "ce_traceparent": _header("W3C trace context of the producing span."),
        "content-type": _header(
            "Binary-mode datacontenttype of the body.", const="application/json"
        ),
    }
    return {
        "type": "object",
        "required": [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_subject",
            "ce_time",
            "content-type",
        ],
        "properties": properties,
    }


def _message_id(type_: str) -> str:
    name = parse_type(type_)
    return f"{name.event}.v{name.version}"


def generate_asyncapi(
    context: str,
    service_title: str,
    topics: Sequence[TopicSpec],
    registry: SchemaRegistry,
    types_by_topic: Mapping[str, Sequence[str]],
    *,
    inline: bool = False,
    version: str = "1.0.0",
) -> dict[str, Any]:
    """An AsyncAPI 3.0.0 document for what one context sends; payloads $ref the schema files.

    The document is meant to live at `contracts/<context>/asyncapi.yaml`, so payload refs are
    relative to that folder. Schemas the registry holds without a file are inlined.
    """
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    base = registry.root / context if registry.root is not None else None

    for topic in topics:
        types = list(dict.fromkeys(types_by_topic.get(topic.name, ())))
        channel_messages: dict[str, Any] = {}
        for type_ in types:
            message_id = _message_id(type_)
            if message_id not in messages:
                messages[message_id] = _message(type_, registry, base, inline)
            channel_messages[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        config: dict[str, Any] = {"cleanup.policy": ["compact" if topic.compacted else "delete"]}
        if topic.retention_ms is not None:
            config["retention.ms"] = topic.retention_ms
        channels[topic.name] = {
            "address": topic.name,
            "title": topic.name,
            "description": (topic.description or f"Integration events of {context}.")
            + " Keyed by aggregate id, so one aggregate's events stay in order on one"
            " partition.",
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "topicConfiguration": config,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"send.{topic.name}"] = {
            "action": "send",
            "title": f"Publish to {topic.name}",
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "messages": [
                {"$ref": f"#/channels/{topic.name}/messages/{m}"} for m in channel_messages
            ],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": service_title,
            "version": version,
            "description": f"Integration events the {context} context publishes: CloudEvents "
            "1.0 in Kafka binary mode (ce_* headers, JSON body).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The platform's Kafka cluster.",
                "variables": {
                    "bootstrap": {
                        "default": "localhost:9092",
                        "description": "Bootstrap server host:port (KAFKA_BOOTSTRAP_SERVERS).",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(
    type_: str, registry: SchemaRegistry, base: Path | None, inline: bool
) -> dict[str, Any]:
    name = parse_type(type_)
    schema = registry.schema(type_)
    path = registry.path(type_)
    payload: dict[str, Any]
    if inline or path is None or base is None:
        payload = schema
    else:
        payload = {"$ref": _relative_ref(path, base)}
    message: dict[str, Any] = {
        "name": type_,
        "title": f"{name.event} v{name.version}",
    }
    summary = schema.get("description") or schema.get("title")
    if isinstance(summary, str):
        message["summary"] = summary
    message.update(
        {
            "contentType": "application/json",
            "correlationId": {"location": "$message.header#/ce_correlationid"},
            "headers": cloudevents_headers(type_),
            "payload": payload,
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "Aggregate id (ce_streamid)."},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
    )
    return message


def _relative_ref(path: Path, base: Path) -> str:
    relative = Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    return relative if relative.startswith("../") else f"./{relative}"


class _Dumper(yaml.SafeDumper):
    # Shared sub-dicts would otherwise come out as &id001 anchors, which readers find opaque.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_asyncapi(document: Mapping[str, Any]) -> str:
    """YAML with keys in the order the document was built, so regeneration is diff-stable."""
    text: str = yaml.dump(
        dict(document),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return text


def asyncapi_for_service(spec: ServiceSpec, registry: SchemaRegistry) -> dict[str, Any]:
    """The AsyncAPI document for one service spec.

    Types go to the topic named by the spec's `types_by_topic` mapping when it has one;
    otherwise a service with a single event topic sends all its types there.
    """
    event_types = list(getattr(spec, "event_types", ()))
    mapping: Mapping[str, Sequence[str]] | None = getattr(spec, "types_by_topic", None)
    topics = [t for t in spec.topics if t.name != spec.dead_letter_topic]
    if mapping is None:
        if len(topics) != 1:
            raise ValueError(
                f"{spec.name}: {len(topics)} topics; say which types go where with types_by_topic"
            )
        mapping = {topics[0].name: event_types}
    topics = [t for t in topics if mapping.get(t.name)]
    title = f"Jingmin {spec.name} service"
    return generate_asyncapi(spec.name, title, topics, registry, mapping)


def write_asyncapi(
    specs: Iterable[ServiceSpec] | None = None,
    contracts_dir: Path | None = None,
    *,
    check: bool = False,
) -> int:
    """Regenerate `contracts/<service>/asyncapi.yaml` for each service that emits events.

    With `check`, write nothing and fail if a committed document is stale. Returns the exit code.
    """
    if specs is None:
        from eventkit.service import load_services

        specs = load_services().values()
    root = contracts_dir if contracts_dir is not None else find_contracts_dir()
    registry = SchemaRegistry.load(root)
    stale: list[Path] = []
    for spec in specs:
        if not getattr(spec, "event_types", ()):
            continue
        text = dump_asyncapi(asyncapi_for_service(spec, registry))
        target = root / spec.name / ASYNCAPI_FILE
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if check:
            stale.append(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    for target in stale:
        print(f"{target} is out of date; run the generator and commit the result", file=sys.stderr)
    return 1 if stale else 0


def run_contracts_check(
    contracts_dir: Path | None = None, specs: Iterable[object] | None = None
) -> int:
    """Print every contract problem; 0 when there are none, 1 otherwise."""
    if specs is None:
        from eventkit.service import load_services

        specs = load_services().values()
    try:
        root = contracts_dir if contracts_dir is not None else find_contracts_dir()
    except FileNotFoundError as exc:
        print(f"contracts-check: {exc}", file=sys.stderr)
        return 1
    problems = contracts_check(root, all_emitted_types(specs))
    for problem in problems:
        print(problem)
    if problems:
        print(f"contracts-check: {len(problems)} problem(s) in {root}", file=sys.stderr)
        return 1
    print(f"contracts-check: {len(_schema_files(root))} schema(s) in {root} are consistent")
    return 0
