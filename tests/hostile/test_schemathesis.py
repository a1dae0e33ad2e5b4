"""schemathesis against every installed service's OpenAPI, in process (ASGI).

For each operation, three passes of generated requests with a token that may do anything
anywhere (every role, every province), so requests get past auth into the handlers:

- positive: data that fits the schema (ids are random, so mostly "not found");
- positive on real items: the same, aimed at a case, visit, complaint... that exists, so the
  commands' own decisions run;
- negative: data that breaks the schema.

Required: never a 5xx; never a 2xx for invalid input; every body that claims to follow the
documented schema does. Undocumented status codes are tolerated only for the gaps listed in
KNOWN_UNDOCUMENTED (reported to the services' owners); any other one fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from eventkit import db
from eventkit.auth import issue_token
from eventkit.service import load_services
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from world import ALL_ROLES, BUREAU, STATION, app_factory, settings_for

pytestmark = pytest.mark.integration

EXAMPLES = 10  # per operation and pass: ~2,000 requests in all, well under a minute
# Statuses the services answer but do not yet document in their OpenAPI: 404 for an unknown
# id, 409 for a command the item's state refuses, 400 for a list cursor the API did not issue.
# Listed in the report of issue 6 for the services' owners; any other gap fails the test.
KNOWN_UNDOCUMENTED = frozenset({400, 404, 409})

SERVICES = [name for name, spec in load_services().items() if app_factory(spec) is not None]


def _in_thread(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on its own loop: the test session's loop is not ours to use here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


SEEDS: dict[str, list[tuple[str, str, dict[str, Any], str]]] = {
    # service: (path, id field, body, name of the path parameter it fills)
    "intake": [
        ("/v1/cases", "case_id", {"occurred_at": _ago(3), "bureau": BUREAU, "station": STATION,
                                  "channel": "call_110", "kind": "alarm", "area_type": "urban",
                                  "demand": "有人打架", "person": {"phone": "13900001111"}},
         "case_id"),
    ],
    "visits": [
        ("/v1/visits", "visit_id", {"occurred_at": _ago(3), "bureau": BUREAU, "station": STATION,
                                    "programme": "aimin", "mode": "in_person",
                                    "target_type": "household", "area_type": "urban",
                                    "officer_id": "p1", "officer_rank": "community_officer",
                                    "planned_for": _ago(1)}, "visit_id"),
        ("/v1/engagements", "engagement_id", {"occurred_at": _ago(3), "bureau": BUREAU,
                                              "station": STATION, "type": "forum",
                                              "venue": "community", "area_type": "urban",
                                              "organiser": "p1", "participants": 5},
         "engagement_id"),
        ("/v1/survey-waves", "wave_id", {"bureau": BUREAU, "title": "民意调查",
                                         "period_start": _ago(24)[:10],
                                         "period_end": _ago(-24 * 30)[:10],
                                         "modes": ["phone", "in_person"]}, "wave_id"),
    ],
    "complaints": [
        ("/v1/complaints", "complaint_id", {"occurred_at": _ago(3), "bureau": BUREAU,
                                            "subject_unit": STATION, "channel": "hotline",
                                            "category": "attitude", "account": "态度不好",
                                            "complainant": {"phone": "13900001111"}},
         "complaint_id"),
        ("/v1/supervision/orders", "order_id", {"bureau": BUREAU, "owner_unit": STATION,
                                                "order_type": "tracking", "item_type": "case",
                                                "item_id": "c1"}, "order_id"),
        ("/v1/supervision/inspections", "inspection_id", {"bureau": BUREAU, "unit": STATION,
                                                          "kind": "on_site"}, "inspection_id"),
    ],
}  # fmt: skip


@dataclass
class Target:
    schema: Any
    auth: dict[str, str]
    real: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def targets(
    pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Target]]:
    from schemathesis.python import asgi

    settings = settings_for(tmp_path_factory.mktemp("fuzz"))
    # Every role, and a scope for every two-digit prefix: nothing is refused for scope.
    token = issue_token(
        settings, subject="fuzz", roles=ALL_ROLES, scopes=[f"{i:02d}" for i in range(100)]
    )
    auth = {"Authorization": f"Bearer {token}"}
    made: list[str] = []
    found: dict[str, Target] = {}
    try:
        for name, spec in load_services().items():
            factory = app_factory(spec)
            if factory is None:
                continue
            database = f"test_{uuid.uuid4().hex[:12]}"
            _in_thread(db.ensure_database(pg_server_url, database))
            made.append(database)
            dsn = db.database_dsn(pg_server_url, database)
            db.migrate(dsn, spec.migrations)
            app = factory(settings, dsn=dsn)
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            # Every request carries the token above; mutating the Authorization header is the
            # auth matrix's job (test_auth_matrix.py), not the fuzzer's.
            schema.config.generation.update(with_security_parameters=False)
            target = Target(schema, auth)
            with asgi.get_client(app) as client:  # type: ignore[arg-type]
                for path, id_field, body, param in SEEDS.get(name, []):
                    r = client.post(path, json=body, headers=auth)
                    assert r.status_code == 201, r.text
                    target.real[param] = r.json()[id_field]
            if name in ("intake", "visits", "complaints"):
                target.real["bureau"] = BUREAU
            found[name] = target
        yield found
    finally:
        asgi.shutdown_lifespans()
        for database in made:
            _in_thread(db.drop_database(pg_server_url, database))


@dataclass
class Findings:
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    undocumented: Counter[tuple[str, int]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def fail(self, key: str, text: str) -> None:
        self.failures[key] += 1
        self.examples.setdefault(key, text[:1500])


def _run(operation: Any, strategy: Any, auth: dict[str, str], checks: list[Callable[..., Any]],
         found: Findings) -> None:  # fmt: skip
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        response = case.call(headers=auth)
        found.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=auth)
        except BaseException as group:
            errors = list(getattr(group, "exceptions", [group]))
            for error in errors:
                key = f"{operation.label}: {type(error).__name__} {response.status_code}"
                found.fail(key, f"{error}\n{case.as_curl_command(headers=auth)}")
        try:
            case.validate_response(response, checks=[status_code_conformance], headers=auth)
        except BaseException as group:
            if all(isinstance(e, UndefinedStatusCode) for e in getattr(group, "exceptions", [])):
                found.undocumented[(operation.label, response.status_code)] += 1
            else:
                found.fail(f"{operation.label}: status check", str(group))

    fuzz()


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_errors_and_invalid_input_is_refused(
    targets: dict[str, Target], service: str
) -> None:
    target = targets[service]
    found = Findings()
    strict = [not_a_server_error, response_schema_conformance]
    for result in target.schema.get_all_operations():
        operation = result.ok()
        params = re.findall(r"{(\w+)}", operation.path)
        real = {p: target.real[p] for p in params if p in target.real}
        _run(operation, operation.as_strategy(GenerationMode.POSITIVE), target.auth, strict, found)
        if params and len(real) == len(params):
            strategy = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real)
            _run(operation, strategy, target.auth, strict, found)
        _run(operation, operation.as_strategy(GenerationMode.NEGATIVE), target.auth,
             [*strict, negative_data_rejection], found)  # fmt: skip
    print(f"{service}: statuses {dict(sorted(found.statuses.items()))}")
    for (label, status), n in sorted(found.undocumented.items()):
        print(f"  undocumented {status}: {label} ({n}×)")
    report = "\n\n".join(f"{k} ({n}×)\n{found.examples[k]}" for k, n in found.failures.items())
    assert not found.failures, report
    # Every operation was exercised (each pass makes up to EXAMPLES requests).
    assert sum(found.statuses.values()) >= EXAMPLES * len(list(target.schema.get_all_operations()))
    unexpected = {(label, s) for label, s in found.undocumented if s not in KNOWN_UNDOCUMENTED}
    assert not unexpected, f"statuses the OpenAPI does not document: {sorted(unexpected)}"
