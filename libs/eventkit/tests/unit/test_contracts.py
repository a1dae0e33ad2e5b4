"""Contracts: schema registry, backward-compatibility rules, contracts-check and AsyncAPI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from eventkit import contracts
from eventkit.contracts import (
    SchemaRegistry,
    SchemaViolation,
    UnknownType,
    all_emitted_types,
    check_compatibility,
    contracts_check,
    dump_asyncapi,
    find_contracts_dir,
    generate_asyncapi,
    write_asyncapi,
)
from eventkit.service import ServiceSpec, TopicSpec
from jsonschema.validators import validator_for

TYPE = "jingmin.toy.ThingHappened.v1"
TOPIC = "toy.thing.events.v1"


def data_schema(type_: str = TYPE, /, **body: Any) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:jingmin:schema:{type_}",
        "type": "object",
        **body,
    }


BASE = data_schema(
    required=["thingId", "at"],
    additionalProperties=False,
    properties={
        "thingId": {"type": "string", "format": "uuid"},
        "at": {"type": "string", "format": "date-time"},
        "kind": {"$ref": "#/$defs/Kind"},
        "count": {"type": "integer", "minimum": 0, "maximum": 100},
        "code": {"type": "string", "pattern": "^[A-Z]{2}$", "maxLength": 2},
        "note": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"postcode": {"type": "string"}},
        },
        "deadlines": {
            "type": "object",
            "propertyNames": {"enum": ["contact", "arrival"]},
            "additionalProperties": {"type": "string", "format": "date-time"},
        },
    },
    **{"$defs": {"Kind": {"type": "string", "enum": ["walk-in", "phone"]}}},
)


def evolve(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """A deep copy of BASE with the keyword at a slash-separated path set or deleted."""
    schema: dict[str, Any] = json.loads(json.dumps(BASE))
    *parents, last = path.split("/")
    node = schema
    for part in parents:
        node = node[part]
    if delete:
        del node[last]
    else:
        node[last] = value
    return schema


def write(root: Path, rel: str, content: Any) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def no_history(path: Path) -> dict[str, Any] | None:
    return None


# --- backward compatibility -------------------------------------------------------------------

BREAKING = [
    pytest.param(
        evolve("required", ["thingId", "at", "count"]),
        "$.count: property became required",
        id="new-required",
    ),
    pytest.param(
        evolve("properties/note", delete=True),
        "$.note: property removed while additionalProperties is false",
        id="removed-closed",
    ),
    pytest.param(
        evolve("properties/note/type", "string"),
        '$.note: type narrowed from ["null", "string"] to "string"',
        id="type-narrowed",
    ),
    pytest.param(
        evolve("properties/count/type", "string"), "$.count: type narrowed", id="type-changed"
    ),
    pytest.param(
        evolve("$defs/Kind/enum", ["walk-in"]),
        '$.kind: enum no longer allows "phone"',
        id="enum-value-removed",
    ),
    pytest.param(
        evolve("properties/code/enum", ["AB"]), '$.code: enum "AB" added', id="enum-added"
    ),
    pytest.param(
        evolve("properties/note/const", None), "$.note: const null added", id="const-added"
    ),
    pytest.param(
        evolve("properties/count/minimum", 1),
        "$.count: minimum tightened from >= 0 to >= 1",
        id="minimum-raised",
    ),
    pytest.param(
        evolve("properties/count/exclusiveMaximum", 100),
        "$.count: maximum tightened from <= 100 to < 100",
        id="maximum-made-exclusive",
    ),
    pytest.param(
        evolve("properties/code/maxLength", 1),
        "$.code: maxLength tightened from 2 to 1",
        id="max-length-lowered",
    ),
    pytest.param(
        evolve("properties/note/minLength", 1), "$.note: minLength 1 added", id="min-length-added"
    ),
    pytest.param(
        evolve("properties/code/pattern", "^[A-Z]{2,3}$"),
        '$.code: pattern changed from "^[A-Z]{2}$" to "^[A-Z]{2,3}$"',
        id="pattern-changed",
    ),
    pytest.param(
        evolve("properties/address/properties/postcode/pattern", "^[0-9]{6}$"),
        '$.address.postcode: pattern "^[0-9]{6}$" added',
        id="nested-pattern-added",
    ),
    pytest.param(
        evolve("properties/note/format", "email"), '$.note: format "email" added', id="format-added"
    ),
    pytest.param(
        evolve("properties/at/format", "date"),
        '$.at: format changed from "date-time" to "date"',
        id="format-changed",
    ),
    pytest.param(
        evolve("properties/tags/items/type", "integer"),
        '$.tags[*]: type narrowed from "string" to "integer"',
        id="items-narrowed",
    ),
    pytest.param(
        evolve("properties/address/additionalProperties", False),
        "$.address: additionalProperties closed",
        id="open-object-closed",
    ),
    pytest.param(
        evolve("properties/address/required", ["postcode"]),
        "$.address.postcode: property became required",
        id="nested-required",
    ),
    pytest.param(
        evolve("properties/deadlines/propertyNames/enum", ["contact"]),
        '$.deadlines (property names): enum no longer allows "arrival"',
        id="map-key-removed",
    ),
    pytest.param(
        evolve("properties/address/propertyNames", {"pattern": "^[a-z]+$"}),
        '$.address (property names): pattern "^[a-z]+$" added',
        id="map-keys-limited",
    ),
    pytest.param(
        evolve("properties/deadlines/additionalProperties/format", "date"),
        '$.deadlines.*: format changed from "date-time" to "date"',
        id="map-values-changed",
    ),
    pytest.param(
        evolve("properties/kind", {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        "$.kind: no alternative of the new anyOf/oneOf accepts the old schema",
        id="anyof-drops-old-type",
    ),
]


@pytest.mark.parametrize(("new", "expected"), BREAKING)
def test_breaking_change_is_reported_with_its_path(new: dict[str, Any], expected: str) -> None:
    problems = check_compatibility(BASE, new)

    assert any(p.startswith(expected) for p in problems), problems


COMPATIBLE = [
    pytest.param(evolve("properties/extra", {"type": "string"}), id="optional-property-added"),
    pytest.param(evolve("$defs/Kind/enum", ["walk-in", "phone", "online"]), id="enum-value-added"),
    pytest.param(evolve("required", ["thingId"]), id="required-dropped"),
    pytest.param(evolve("properties/count/type", "number"), id="integer-widened-to-number"),
    pytest.param(evolve("properties/code/type", ["string", "null"]), id="null-allowed"),
    pytest.param(evolve("properties/count/maximum", 1000), id="bound-relaxed"),
    pytest.param(evolve("properties/code/pattern", delete=True), id="pattern-dropped"),
    pytest.param(evolve("properties/at/format", delete=True), id="format-dropped"),
    pytest.param(evolve("additionalProperties", True), id="object-opened"),
    pytest.param(
        evolve("properties/note", {"oneOf": [{"type": "string"}, {"type": "null"}]}),
        id="type-list-as-oneof",
    ),
    pytest.param(
        evolve(
            "properties/kind",
            {"type": "string", "enum": ["walk-in", "phone"], "description": "inlined"},
        ),
        id="ref-inlined",
    ),
    pytest.param(
        evolve("properties/deadlines/propertyNames/enum", ["contact", "arrival", "closure"]),
        id="map-key-added",
    ),
    pytest.param(evolve("title", "Renamed"), id="annotation-changed"),
]


@pytest.mark.parametrize("new", COMPATIBLE)
def test_compatible_change_passes(new: dict[str, Any]) -> None:
    assert check_compatibility(BASE, new) == []


def test_identical_schemas_are_compatible() -> None:
    assert check_compatibility(BASE, BASE) == []


def test_recursive_schema_terminates() -> None:
    tree = data_schema(
        **{
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                }
            },
            "properties": {"root": {"$ref": "#/$defs/Node"}},
        }
    )
    narrowed = json.loads(json.dumps(tree))
    narrowed["$defs"]["Node"]["properties"]["name"]["maxLength"] = 5

    assert check_compatibility(tree, tree) == []
    assert check_compatibility(tree, narrowed) == ["$.root.name: maxLength 5 added"]


def test_keyword_outside_the_supported_subset_is_flagged_when_it_changes() -> None:
    new = evolve("properties/tags/contains", {"const": "x"})

    assert check_compatibility(BASE, new) == [
        "$.tags: keyword 'contains' is outside what contracts-check can compare; keep it "
        "unchanged or check compatibility by hand"
    ]


# --- schema registry --------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> SchemaRegistry:
    write(tmp_path, "toy/ThingHappened.v1.json", BASE)
    return SchemaRegistry.load(tmp_path)


def valid_data(**overrides: Any) -> dict[str, Any]:
    return {
        "thingId": "6f1c1f9e-5a55-4d8e-9a57-1f0b7c1d2e3f",
        "at": "2025-03-01T08:30:00Z",
        **overrides,
    }


def test_registry_loads_schema_files_by_type(registry: SchemaRegistry, tmp_path: Path) -> None:
    assert registry.types() == {TYPE}
    assert registry.schema(TYPE)["$id"] == f"urn:jingmin:schema:{TYPE}"
    assert registry.path(TYPE) == tmp_path / "toy" / "ThingHappened.v1.json"
    assert registry.dataschema_for(TYPE) == f"urn:jingmin:schema:{TYPE}"


def test_valid_data_passes(registry: SchemaRegistry) -> None:
    registry.validate(TYPE, valid_data(kind="phone", address={"postcode": "610000"}))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"thingId": "6f1c1f9e-5a55-4d8e-9a57-1f0b7c1d2e3f"},
            "$: 'at' is a required property",
            id="missing",
        ),
        pytest.param(
            valid_data(thingId="not-a-uuid"), "$.thingId: 'not-a-uuid' is not a 'uuid'", id="format"
        ),
        pytest.param(
            valid_data(at="yesterday"), "$.at: 'yesterday' is not a 'date-time'", id="date-time"
        ),
        pytest.param(valid_data(at="2025-02-30T08:30:00Z"), "$.at:", id="impossible-date"),
        pytest.param(valid_data(kind="email"), "$.kind: 'email' is not one of", id="enum"),
        pytest.param(
            valid_data(tags=["a", 3]), "$.tags[1]: 3 is not of type 'string'", id="nested"
        ),
        pytest.param(
            valid_data(colour="red"),
            "Additional properties are not allowed ('colour'",
            id="undeclared",
        ),
    ],
)
def test_violation_names_the_field(
    registry: SchemaRegistry, data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        registry.validate(TYPE, data)

    assert caught.value.type == TYPE
    assert any(expected in e for e in caught.value.errors), caught.value.errors
    assert expected in str(caught.value)


def test_every_violation_is_listed(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaViolation) as caught:
        registry.validate(TYPE, {"count": -1, "code": "abc"})

    fields = {e.split(":")[0] for e in caught.value.errors}
    assert fields == {"$", "$.count", "$.code"}


def test_undeclared_type_is_unknown(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownType):
        registry.validate("jingmin.toy.Nothing.v1", {})
    with pytest.raises(UnknownType):
        registry.dataschema_for("jingmin.toy.Nothing.v1")


def test_validator_is_compiled_once_per_type(
    registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []

    def counting(schema: Any, default: Any = None) -> Any:
        compiled.append(schema["$id"])
        return validator_for(schema, default=default)

    monkeypatch.setattr(contracts, "validator_for", counting)
    for _ in range(3):
        registry.validate(TYPE, valid_data())
    with pytest.raises(SchemaViolation):
        registry.validate(TYPE, {})

    assert compiled == [f"urn:jingmin:schema:{TYPE}"]
    assert registry.validator(TYPE) is registry.validator(TYPE)


def test_schema_copies_do_not_leak_into_the_registry(registry: SchemaRegistry) -> None:
    registry.schema(TYPE)["required"].append("colour")

    registry.validate(TYPE, valid_data())


def test_find_contracts_dir_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JINGMIN_CONTRACTS_DIR", str(tmp_path))

    assert find_contracts_dir() == tmp_path


def test_find_contracts_dir_walks_up_from_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "contracts/toy/ThingHappened.v1.json", BASE)
    nested = tmp_path / "services" / "toy"
    nested.mkdir(parents=True)
    monkeypatch.delenv("JINGMIN_CONTRACTS_DIR", raising=False)
    monkeypatch.chdir(nested)

    assert find_contracts_dir() == tmp_path / "contracts"


# --- contracts-check --------------------------------------------------------------------------


def toy_asyncapi(root: Path, *types: str) -> None:
    registry = SchemaRegistry.load(root)
    doc = generate_asyncapi("toy", "Toy", [TopicSpec(TOPIC)], registry, {TOPIC: list(types)})
    write(root, "toy/asyncapi.yaml", dump_asyncapi(doc))


@pytest.fixture
def contracts_dir(tmp_path: Path) -> Path:
    write(tmp_path, "toy/ThingHappened.v1.json", BASE)
    toy_asyncapi(tmp_path, TYPE)
    return tmp_path


def test_consistent_contracts_pass(contracts_dir: Path) -> None:
    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == []


def test_emitted_type_without_schema_is_undeclared(contracts_dir: Path) -> None:
    problems = contracts_check(
        contracts_dir, [TYPE, "jingmin.toy.ThingVanished.v1"], previous=no_history
    )

    assert problems == [
        "jingmin.toy.ThingVanished.v1: emitted but undeclared (no toy/ThingVanished.v1.json)"
    ]


def test_id_must_match_the_file_name(contracts_dir: Path) -> None:
    write(
        contracts_dir,
        "toy/ThingHappened.v1.json",
        {**BASE, "$id": "urn:jingmin:schema:jingmin.toy.OtherThing.v1"},
    )

    problems = contracts_check(contracts_dir, [TYPE], previous=no_history)

    assert problems == [
        "toy/ThingHappened.v1.json: $id is 'urn:jingmin:schema:jingmin.toy.OtherThing.v1', "
        "expected 'urn:jingmin:schema:jingmin.toy.ThingHappened.v1'"
    ]


def test_invalid_json_schema_is_reported(contracts_dir: Path) -> None:
    write(contracts_dir, "toy/ThingHappened.v1.json", evolve("required", "thingId"))

    problems = contracts_check(contracts_dir, [TYPE], previous=no_history)

    assert len(problems) == 1
    assert problems[0].startswith("toy/ThingHappened.v1.json: not a valid JSON Schema at required:")


def test_misnamed_schema_file_is_reported(contracts_dir: Path) -> None:
    write(contracts_dir, "toy/ThingHappened.json", BASE)

    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == [
        "toy/ThingHappened.json: not named <EventName>.v<N>.json"
    ]


def test_every_version_must_read_every_earlier_one(contracts_dir: Path) -> None:
    v2_type, v3_type = "jingmin.toy.ThingHappened.v2", "jingmin.toy.ThingHappened.v3"
    v2 = {**evolve("properties/count/maximum", 1000), "$id": f"urn:jingmin:schema:{v2_type}"}
    # v3 is compatible with v2 but tightens below what v1 allowed.
    v3 = {**evolve("properties/count/maximum", 50), "$id": f"urn:jingmin:schema:{v3_type}"}
    write(contracts_dir, "toy/ThingHappened.v2.json", v2)
    write(contracts_dir, "toy/ThingHappened.v3.json", v3)
    toy_asyncapi(contracts_dir, TYPE, v2_type, v3_type)

    problems = contracts_check(contracts_dir, [TYPE, v2_type, v3_type], previous=no_history)

    assert problems == [
        f"{v3_type} is not backward compatible with v1: "
        "$.count: maximum tightened from <= 100 to <= 50",
        f"{v3_type} is not backward compatible with v2: "
        "$.count: maximum tightened from <= 1000 to <= 50",
    ]


def test_published_file_may_only_be_extended_compatibly(contracts_dir: Path) -> None:
    published = evolve("required", ["thingId"])

    problems = contracts_check(contracts_dir, [TYPE], previous=lambda path: published)

    assert problems == [
        "toy/ThingHappened.v1.json changed incompatibly since it was "
        "published: $.at: property became required (messages written with "
        "the old schema may lack it)"
    ]


def test_compatible_edit_of_published_file_passes(contracts_dir: Path) -> None:
    published = evolve("properties/count/maximum", 10)

    assert contracts_check(contracts_dir, [TYPE], previous=lambda path: published) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_default_history_is_git_head(contracts_dir: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=contracts_dir, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "v1")
    write(contracts_dir, "toy/ThingHappened.v1.json", evolve("properties/count/maximum", 10))

    problems = contracts_check(contracts_dir, [TYPE])

    assert problems == [
        "toy/ThingHappened.v1.json changed incompatibly since it was "
        "published: $.count: maximum tightened from <= 100 to <= 10"
    ]


def test_untracked_file_has_no_history(tmp_path: Path) -> None:
    assert contracts.git_head_version(write(tmp_path, "toy/ThingHappened.v1.json", BASE)) is None


def test_schema_missing_from_asyncapi_is_reported(contracts_dir: Path) -> None:
    other = "jingmin.toy.OtherThing.v1"
    write(contracts_dir, "toy/OtherThing.v1.json", data_schema(other))

    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == [
        "toy/asyncapi.yaml: toy/OtherThing.v1.json is not in any message"
    ]


def test_asyncapi_message_without_schema_file_is_reported(contracts_dir: Path) -> None:
    doc_path = contracts_dir / "toy" / "asyncapi.yaml"
    doc_path.write_text(
        doc_path.read_text().replace("./ThingHappened.v1.json", "./ThingGone.v1.json")
    )

    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == [
        "toy/asyncapi.yaml: message components.messages.ThingHappened.v1 refers to "
        "./ThingGone.v1.json, which is not a schema file",
        "toy/asyncapi.yaml: toy/ThingHappened.v1.json is not in any message",
    ]


def test_context_without_asyncapi_is_reported(contracts_dir: Path) -> None:
    (contracts_dir / "toy" / "asyncapi.yaml").unlink()

    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == [
        "toy/asyncapi.yaml: missing"
    ]


def test_a_context_published_by_another_contexts_document_needs_none_of_its_own(
    contracts_dir: Path,
) -> None:
    # One service sending two contexts' types (complaints also sends supervision events)
    # writes one document, in its own folder, that covers the other folder's schemas.
    other = "jingmin.toyaudit.ThingAudited.v1"
    write(contracts_dir, "toyaudit/ThingAudited.v1.json", data_schema(other))
    registry = SchemaRegistry.load(contracts_dir)
    topics = [TopicSpec(TOPIC), TopicSpec("toy.audit.events.v1")]
    doc = generate_asyncapi(
        "toy", "Toy", topics, registry, {TOPIC: [TYPE], "toy.audit.events.v1": [other]}
    )
    write(contracts_dir, "toy/asyncapi.yaml", dump_asyncapi(doc))

    assert contracts_check(contracts_dir, [TYPE, other], previous=no_history) == []
    toy_asyncapi(contracts_dir, TYPE)  # the document no longer carries the other context
    assert contracts_check(contracts_dir, [TYPE, other], previous=no_history) == [
        "toyaudit/asyncapi.yaml: missing"
    ]


def test_all_emitted_types_reads_every_spec() -> None:
    specs = [
        SimpleNamespace(event_types=("a", "b")),
        SimpleNamespace(),
        SimpleNamespace(event_types=["b", "c"]),
    ]

    assert all_emitted_types(specs) == {"a", "b", "c"}


# --- AsyncAPI ---------------------------------------------------------------------------------


def test_generated_asyncapi_describes_the_cloudevents_binding(contracts_dir: Path) -> None:
    doc = yaml.safe_load((contracts_dir / "toy" / "asyncapi.yaml").read_text())

    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["kafka"]["host"] == "{bootstrap}"
    channel = doc["channels"][TOPIC]
    assert channel["address"] == TOPIC
    assert channel["bindings"]["kafka"]["topic"] == TOPIC
    assert doc["operations"][f"send.{TOPIC}"]["action"] == "send"
    message = doc["components"]["messages"]["ThingHappened.v1"]
    assert message["payload"] == {"$ref": "./ThingHappened.v1.json"}
    headers = message["headers"]["properties"]
    assert headers["ce_type"]["const"] == TYPE
    assert headers["ce_dataschema"]["const"] == f"urn:jingmin:schema:{TYPE}"
    assert headers["ce_specversion"]["const"] == "1.0"
    assert {
        "ce_id",
        "ce_source",
        "ce_subject",
        "ce_time",
        "ce_bureau",
        "ce_streamid",
        "ce_streamversion",
        "ce_correlationid",
        "ce_causationid",
        "ce_traceparent",
        "content-type",
    } <= set(headers)
    assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_asyncapi_yaml_is_stable(contracts_dir: Path) -> None:
    registry = SchemaRegistry.load(contracts_dir)
    first = dump_asyncapi(
        generate_asyncapi("toy", "Toy", [TopicSpec(TOPIC)], registry, {TOPIC: [TYPE]})
    )
    second = dump_asyncapi(
        generate_asyncapi("toy", "Toy", [TopicSpec(TOPIC)], registry, {TOPIC: [TYPE]})
    )

    assert first == second == (contracts_dir / "toy" / "asyncapi.yaml").read_text()
    assert "&id" not in first


def test_inlined_payload_also_satisfies_contracts_check(contracts_dir: Path) -> None:
    registry = SchemaRegistry.load(contracts_dir)
    doc = generate_asyncapi(
        "toy", "Toy", [TopicSpec(TOPIC)], registry, {TOPIC: [TYPE]}, inline=True
    )
    write(contracts_dir, "toy/asyncapi.yaml", dump_asyncapi(doc))

    assert (
        doc["components"]["messages"]["ThingHappened.v1"]["payload"]["$id"]
        == f"urn:jingmin:schema:{TYPE}"
    )
    assert contracts_check(contracts_dir, [TYPE], previous=no_history) == []


def test_write_asyncapi_then_check_finds_it_current(tmp_path: Path) -> None:
    write(tmp_path, "toy/ThingHappened.v1.json", BASE)
    spec = ServiceSpec(
        name="toy",
        default_port=0,
        database="toy",
        app="toy:app",
        migrations=tmp_path,
        topics=[TopicSpec(TOPIC), TopicSpec("toy.dlq")],
        to_messages=lambda event: [],
        dead_letter_topic="toy.dlq",
        event_types=[TYPE],
    )

    assert write_asyncapi([spec], tmp_path, check=True) == 1
    assert write_asyncapi([spec], tmp_path) == 0
    assert write_asyncapi([spec], tmp_path, check=True) == 0
    assert contracts_check(tmp_path, [TYPE], previous=no_history) == []


def _validator_script() -> Path | None:
    for folder in Path(__file__).resolve().parents:
        script = folder / "contracts" / "tools" / "validate.mjs"
        if script.exists():
            return script
    return None


def test_generated_asyncapi_passes_the_reference_parser(contracts_dir: Path) -> None:
    script = _validator_script()
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if script is None or not (script.parent / "node_modules").is_dir():
        pytest.skip("run `npm ci --prefix contracts/tools` to install the AsyncAPI parser")

    ok = subprocess.run(
        ["node", str(script), str(contracts_dir)], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr

    # The parser must really read the $ref'd schema: break it and it has to complain.
    write(contracts_dir, "toy/ThingHappened.v1.json", {**BASE, "type": "obj"})
    broken = subprocess.run(
        ["node", str(script), str(contracts_dir)], capture_output=True, text=True, timeout=120
    )
    assert broken.returncode == 1
    assert "ThingHappened.v1.json" in broken.stderr
