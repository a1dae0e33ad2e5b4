"""Auth matrix: every route of every installed API against every kind of bad token.

The table is generated from each app's own route list (`app.routes`), so a route added later
is tested (or must be listed as public) without anyone remembering to. Each authenticated
route is called with real ids and valid bodies of bureau 330602, as:

- no token, garbage, an expired token, the wrong issuer, the wrong audience, an unsigned one
  (alg none), a tampered signature and one signed by a foreign key: 401, always;
- a well-formed token of another bureau (330603) holding every role: never a 2xx on an item of
  330602 (403 or 404), and a collection answers only with what its scope covers.

Never a 5xx.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventkit.auth import issue_token
from world import ALL_ROLES, BUREAU, OTHER_BUREAU, STATION, World, route_table

pytestmark = pytest.mark.integration

# Reachable without a token, on purpose: probes, metrics, API docs, the citizen pages
# (the SMS survey link is its own credential; the complaint form and tracking page are
# public by design, with their own rate limits and single-use form tokens), and the
# published message schemas partners resolve ce_dataschema with (eventkit.published_schemas).
PUBLIC = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/metrics/process"),  # metrics' own process metrics, beside its figures
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
        ("GET", "/s/{token}"),
        ("POST", "/s/{token}"),
        ("GET", "/complain"),
        ("POST", "/complain"),
        ("GET", "/track"),
        ("GET", "/track/{code}"),
        ("GET", "/assets/complaints.css"),
        ("GET", "/assets/complaints.js"),
        # The complaint form's place look-ups: GB/T 2260 names and stations, nothing personal.
        ("GET", "/v1/public/divisions"),
        ("GET", "/v1/public/divisions/{county}/stations"),
        ("GET", "/schemas/{name}"),
    }
)

ROUTES, ABSENT = route_table(Path("/tmp"))
AUTHENTICATED = [r for r in ROUTES if (r[1], r[2]) not in PUBLIC]

_SOON = (datetime.now(UTC) + timedelta(days=3)).isoformat()
_TODAY = datetime.now(UTC).date().isoformat()

# A valid body for each write: the request must get past validation, so a refusal proves the
# token was refused, not the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("intake", "/v1/cases"): {
        "bureau": BUREAU, "station": STATION, "channel": "call_110", "kind": "alarm",
        "area_type": "urban", "demand": "有人打架",
    },
    ("intake", "/v1/cases/{case_id}/first-contact"): {
        "officer_id": "p1", "unit": STATION, "in_remit": True},
    ("intake", "/v1/cases/{case_id}/dispatch"): {
        "unit": STATION, "officer_ids": ["p1"], "reason": "打架", "purpose": "制止"},
    ("intake", "/v1/cases/{case_id}/arrival"): {},
    ("intake", "/v1/cases/{case_id}/service-visits"): {},
    ("intake", "/v1/cases/{case_id}/transfer"): {
        "target_type": "external", "target": "12345", "explanation": "请拨打12345",
        "person_informed": True},
    ("intake", "/v1/cases/{case_id}/escalation"): {"reason": "需要政府协调"},
    ("intake", "/v1/cases/{case_id}/resolution"): {"reply": "已处理"},
    ("intake", "/v1/cases/{case_id}/rejection"): {"reason": "duplicate", "explanation": "重复"},
    ("intake", "/v1/cases/{case_id}/reopen"): {"reason": "callback_unsatisfied"},
    ("intake", "/v1/cases/{case_id}/close"): {},
    ("intake", "/v1/cases/{case_id}/enforcement-decision"): {
        "decision": "administrative_penalty"},
    ("intake", "/v1/cases/{case_id}/classification"): {
        "crime_victim": True, "preventable": False, "category": "theft.burglary"},
    ("intake", "/v1/policies/{bureau}"): {},
    ("visits", "/v1/visits"): {
        "bureau": BUREAU, "station": STATION, "programme": "aimin", "mode": "in_person",
        "target_type": "household", "area_type": "urban", "officer_id": "p1",
        "officer_rank": "community_officer", "planned_for": _SOON},
    ("visits", "/v1/visits/{visit_id}/complete"): {"feedback": "supportive"},
    ("visits", "/v1/visits/{visit_id}/fail"): {"outcome": "nobody_home"},
    ("visits", "/v1/visits/{visit_id}/reschedule"): {"planned_for": _SOON, "reason": "other"},
    ("visits", "/v1/engagements"): {
        "bureau": BUREAU, "station": STATION, "type": "forum", "venue": "community",
        "area_type": "urban", "organiser": "p1", "participants": 10},
    ("visits", "/v1/engagements/{engagement_id}/opinions"): {
        "opinions": [{"feedback": "critical"}]},
    ("visits", "/v1/callbacks/{callback_id}/attempts"): {"outcome": "reached"},
    ("visits", "/v1/callbacks/{callback_id}/assign"): {"officer_id": "p9"},
    ("visits", "/v1/callbacks/{callback_id}/answer"): {
        "satisfaction": "satisfied", "security": "safe"},
    ("visits", "/v1/opt-outs"): {"bureau": BUREAU, "subject_id": "{subject_id}"},
    ("visits", "/v1/policies/{bureau}"): {},
    ("visits", "/v1/survey-waves"): {
        "bureau": BUREAU, "title": "民意调查", "period_start": _TODAY, "period_end": _TODAY,
        "modes": ["phone"]},
    ("visits", "/v1/survey-waves/{wave_id}/draws"): {"station": STATION},
    ("visits", "/v1/survey-waves/{wave_id}/units/{unit_id}/attempts"): {
        "mode": "phone", "outcome": "non_contact"},
    ("visits", "/v1/survey-waves/{wave_id}/invitations"): {"station": STATION},
    ("visits", "/v1/survey-waves/{wave_id}/units/{unit_id}/link"): {"reason": "核实纪律问题"},
    ("visits", "/v1/opt-outs/{subject_id}/withdrawal"): {"bureau": BUREAU, "reason": "本人要求"},
    ("complaints", "/v1/complaints"): {
        "bureau": BUREAU, "subject_unit": STATION, "channel": "hotline", "category": "attitude",
        "account": "态度不好"},
    ("complaints", "/v1/complaints/{complaint_id}/acknowledge"): {},
    ("complaints", "/v1/complaints/{complaint_id}/assign"): {
        "investigator_id": "dc9", "investigator_unit": BUREAU},
    ("complaints", "/v1/complaints/{complaint_id}/extend"): {
        "reason": "complex", "new_due_date": (datetime.now(UTC) + timedelta(days=70)).date()
        .isoformat()},
    ("complaints", "/v1/complaints/{complaint_id}/conclude"): {"outcome": "withdrawn"},
    ("complaints", "/v1/complaints/{complaint_id}/reply"): {"mode": "phone", "reply": "已答复"},
    ("complaints", "/v1/complaints/{complaint_id}/close"): {},
    ("complaints", "/v1/complaints/{complaint_id}/reopen"): {"reason": "review"},
    ("complaints", "/v1/complaints/{complaint_id}/remedy"): {"remedy": "other"},
    ("complaints", "/v1/policies/{bureau}"): {},
    ("complaints", "/v1/supervision/orders"): {
        "bureau": BUREAU, "owner_unit": STATION, "order_type": "tracking", "item_type": "case",
        "item_id": "{case_id}"},
    ("complaints", "/v1/supervision/orders/{order_id}/report"): {"report": "已整改"},
    ("complaints", "/v1/supervision/orders/{order_id}/return"): {
        "reason": "incomplete", "due_at": _SOON},
    ("complaints", "/v1/supervision/orders/{order_id}/close"): {"verdict": "rectified"},
    ("complaints", "/v1/supervision/inspections"): {
        "bureau": BUREAU, "unit": STATION, "kind": "online"},
    ("complaints", "/v1/supervision/inspections/{inspection_id}/findings"): {
        "code": "record.incomplete", "severity": "observation"},
    ("complaints", "/v1/supervision/inspections/{inspection_id}/complete"): {},
    ("complaints", "/v1/supervision/accountability"): {
        "bureau": BUREAU, "unit": STATION, "kind": "warning_education",
        "basis_type": "complaint", "basis_id": "{complaint_id}"},
}  # fmt: skip
# Query parameters a route needs to do anything at all.
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("intake", "/internal/v1/contacts/{item_id}"): {"purpose": "callback"},
    ("complaints", "/internal/v1/contacts/{item_id}"): {"purpose": "complaint_reply"},
    ("intake", "/v1/contact-reads"): {"item_id": "{case_id}"},
    ("complaints", "/v1/contact-reads"): {"item_id": "{complaint_id}"},
    ("metrics", "/v1/figures/breakdown"): {"dimension": "station"},
    ("intake", "/v1/units"): {"scope": BUREAU},
    ("visits", "/v1/survey-waves/{wave_id}/sample"): {"station": STATION},
}
# Query parameters naming a unit: set to bureau 330602's, a foreign token must be refused.
UNIT_QUERIES = {"bureau": BUREAU, "station": STATION, "unit": STATION, "scope": BUREAU}


def _fill(text: str, w: World, service: str) -> str:
    ids = dict(w.ids, bureau=BUREAU, station=STATION, code=STATION)  # code: a register unit
    ids["item_id"] = w.ids["complaint_id"] if service == "complaints" else w.ids["case_id"]
    if service == "complaints":
        # A person this service holds data of: the complainant.
        ids["subject_id"] = w.ids["complainant_subject_id"]
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    assert not re.search(r"\{[a-z_]+\}", text), f"no seeded value for a parameter of {text}"
    return text


def _request(w: World, service: str, method: str, path: str) -> dict[str, Any]:
    body = BODIES.get((service, path))
    query = QUERIES.get((service, path), {})
    return {
        "method": method,
        "url": _fill(path, w, service),
        "params": {k: _fill(v, w, service) for k, v in query.items()},
        "json": json.loads(_fill(json.dumps(body, ensure_ascii=False), w, service))
        if body is not None
        else ({} if method in ("POST", "PUT") else None),
    }


# ---- the bad tokens ----------------------------------------------------------------------------


def _valid(w: World, **kw: Any) -> str:
    return issue_token(w.settings, subject="attacker", roles=ALL_ROLES, scopes=["33"], **kw)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bad_tokens(w: World) -> Iterator[tuple[str, str | None]]:
    """(what, Authorization header value) for every way a token can be wrong."""
    good = _valid(w)
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    yield "missing", None
    yield "garbage", "Bearer not-a-token"
    yield "not bearer", f"Basic {good}"
    yield (
        "expired",
        "Bearer " + _valid(w, ttl=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=3)),
    )
    other_issuer = w.settings.model_copy(update={"jwt_issuer": "https://evil.example"})
    yield (
        "wrong issuer",
        "Bearer " + issue_token(other_issuer, subject="attacker", roles=ALL_ROLES, scopes=["33"]),
    )
    other_audience = w.settings.model_copy(update={"jwt_audience": "some-other-api"})
    yield (
        "wrong audience",
        "Bearer " + issue_token(other_audience, subject="attacker", roles=ALL_ROLES, scopes=["33"]),
    )
    unsigned = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    yield "unsigned (alg none)", f"Bearer {unsigned}.{payload}."
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    yield "tampered signature", f"Bearer {header}.{payload}.{flipped}"
    raised = dict(claims, scope=["33", "11", "44"], roles=list(ALL_ROLES))
    yield "tampered claims", f"Bearer {header}.{_b64(json.dumps(raised).encode())}.{signature}"
    foreign = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                         headers={"kid": kid})  # fmt: skip
    yield "foreign key, same kid", f"Bearer {foreign}"
    hs = jwt.encode(claims, "secret-guess-of-at-least-32-bytes!!", algorithm="HS256",
                    headers={"kid": kid})  # fmt: skip
    yield "HS256 with a guessed secret", f"Bearer {hs}"


def test_the_table_covers_every_installed_api() -> None:
    assert {s for s, _, _ in ROUTES} >= {"intake", "visits", "complaints"}
    assert len(AUTHENTICATED) > 50
    # Services without an API yet (metrics, while it is built) join the table once they have one.
    print("services without an API:", ABSENT or "none")


@pytest.mark.parametrize(("service", "method", "path"), AUTHENTICATED)
async def test_bad_tokens_are_refused(
    the_world: World, service: str, method: str, path: str
) -> None:
    client = the_world.clients[service]
    request = _request(the_world, service, method, path)
    failures = []
    for what, authorization in bad_tokens(the_world):
        headers = {"Authorization": authorization} if authorization else {}
        r = await client.request(**request, headers=headers)
        if r.status_code != 401:
            failures.append(f"{what}: {r.status_code} {r.text[:200]}")
        elif "bearer" not in r.headers.get("www-authenticate", "").lower():
            failures.append(f"{what}: 401 without a WWW-Authenticate: Bearer challenge")
    assert not failures, f"{method} {path}\n" + "\n".join(failures)


@pytest.mark.parametrize(("service", "method", "path"), AUTHENTICATED)
async def test_another_bureau_is_refused(
    the_world: World, service: str, method: str, path: str
) -> None:
    client = the_world.clients[service]
    request = _request(the_world, service, method, path)
    foreign = the_world.token(*ALL_ROLES, scope=OTHER_BUREAU, subject="330603-dc-01")
    r = await client.request(**request, headers=foreign)
    assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:300]}"
    is_item = "{" in path or method != "GET"
    if is_item:
        allowed = (403, 404) if (service, path) in BODIES or method in ("GET", "DELETE") else (
            403, 404, 422)  # fmt: skip
        assert r.status_code in allowed, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return
    # A collection: answered from the caller's own scope, so nothing of 330602 shows.
    assert r.status_code in (200, 403, 404), f"{method} {path}: {r.status_code} {r.text[:300]}"
    if r.status_code == 200:
        assert BUREAU not in r.text, f"{method} {path} shows bureau {BUREAU}: {r.text[:300]}"
    # Asking for 330602's units by name is refused outright.
    route = next(
        x
        for x in client._transport.app.routes  # type: ignore[attr-defined]
        if getattr(x, "path", None) == path and method in getattr(x, "methods", ())
    )
    names = {p.alias for p in route.dependant.query_params}
    for name in sorted(names & set(UNIT_QUERIES)):
        r = await client.request(
            method, request["url"], params={**request["params"], name: UNIT_QUERIES[name]},
            headers=foreign,
        )  # fmt: skip
        assert r.status_code in (403, 404), (
            f"{method} {path}?{name}=: {r.status_code} {r.text[:300]}"
        )


@pytest.mark.parametrize(
    ("service", "method", "path"), [r for r in ROUTES if (r[1], r[2]) in PUBLIC]
)
async def test_public_routes_answer_without_a_token(
    the_world: World, service: str, method: str, path: str
) -> None:
    url = path.replace("{token}", "not-a-token").replace("{code}", "NOSUCHCODE")
    r = await the_world.clients[service].request(method, url)
    # /readyz is honest: with no broker here it says 503, and still needs no token.
    ready = (503,) if path == "/readyz" else ()
    assert r.status_code != 401, f"{method} {path}: {r.status_code}"
    assert r.status_code < 500 or r.status_code in ready, f"{method} {path}: {r.status_code}"


def test_every_route_is_either_public_or_authenticated() -> None:
    listed = {(m, p) for _, m, p in ROUTES}
    # A public route that disappeared should leave this list too (it documents the surface).
    assert {x for x in PUBLIC if x not in listed} <= {
        ("GET", "/s/{token}"), ("POST", "/s/{token}"), ("GET", "/complain"), ("POST", "/complain"),
        ("GET", "/track"), ("GET", "/track/{code}"), ("GET", "/assets/complaints.css"),
    }  # fmt: skip
