"""The resident survey end to end (issue 18): a wave recorded through the visits API, its
events relayed to Kafka and applied by a faust processor; `jingmin verify metrics` (the SQL
oracle over visits' event store, which knows the units the topic never carries) finds zero
differences, and the metrics JSON states exactly visits' own estimates for the wave."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eventkit.auth import issue_token
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.oracle.verify import verify, verify_once
from metricskit import Platform, ProcessorProcess, platform
from support import figures_api

pytestmark = pytest.mark.integration

BUREAU = "330602"
STATIONS = (BUREAU + "001", BUREAU + "002")
BEIJING = ZoneInfo("Asia/Shanghai")


def _daytime() -> str:
    """The latest 10:00 in Beijing that has passed: outside the quiet hours."""
    now = datetime.now(BEIJING)
    day = now.date() if now.hour >= 10 else now.date() - timedelta(days=1)
    return datetime.combine(day, time(10), BEIJING).isoformat()


def _frame(rows: int, seed: int) -> str:
    """A frame with names and numbers; locals are two thirds of it."""
    lines = ["name,phone,age_band,sex,residence"]
    for i in range(rows):
        lines.append(
            f"居民{seed}{i:03d},139{seed:02d}00{i:04d},{('18-29', '30-44', '45-59', '60+')[i % 4]},"
            f"{'female' if i % 2 else 'male'},{'local' if i % 3 else 'non_local'}"
        )
    return "\n".join(lines) + "\n"


def _headers(p: Platform, *roles: str, scopes: tuple[str, ...] = (BUREAU,)) -> dict[str, str]:
    token = issue_token(p.settings, subject="adm01", roles=list(roles), scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


async def _record_wave(p: Platform) -> str:
    visits = p.clients["visits"]
    admin = _headers(p, "admin")
    today = datetime.now(BEIJING).date()
    r = await visits.post(
        "/v1/survey-waves",
        json={
            "bureau": BUREAU,
            "title": "2026年第四季度群众安全感和满意度调查",
            "period_start": (today - timedelta(days=2)).isoformat(),
            "period_end": (today + timedelta(days=30)).isoformat(),
            "precision": 0.1,
            "expected_response_rate": 0.6,
            "modes": ["phone", "in_person"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    wave_id: str = r.json()["wave_id"]
    at = _daytime()
    for k, station in enumerate(STATIONS):
        r = await visits.post(
            f"/v1/survey-waves/{wave_id}/frames/{station}",
            content=_frame(90 + 30 * k, k).encode(),
            headers={**admin, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        r = await visits.post(
            f"/v1/survey-waves/{wave_id}/draws", json={"station": station, "seed": 11 + k},
            headers=admin,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        r = await visits.get(
            f"/v1/survey-waves/{wave_id}/sample", params={"station": station}, headers=admin
        )
        assert r.status_code == 200, r.text
        officer = _headers(p, "officer", scopes=(station,))
        for i, unit in enumerate(r.json()["items"][:60]):
            sat = ("satisfied", "basically_satisfied", "dissatisfied")[i % 3]
            sec = ("safe", "basically_safe", "not_very_safe", "unsafe")[i % 4]
            script: list[dict[str, Any]] = [
                [{"outcome": "completed", "answers": {"security": sec, "satisfaction": sat}}],
                [{"outcome": "non_contact"}, {"outcome": "completed",
                  "answers": {"security": sec, "satisfaction": sat}}],
                [{"outcome": "partial", "answers": {"security": sec}},
                 {"outcome": "completed", "answers": {"security": "safe", "satisfaction": sat}}],
                [{"outcome": "partial", "answers": {"satisfaction": sat}}, {"outcome": "refused"}],
                [{"outcome": "refused"}],
                [{"outcome": "ineligible"}],
                [{"outcome": "unknown_eligibility"}, {"outcome": "non_contact"}],
            ][i % 7]  # fmt: skip
            # Non-locals answer less: the respondents over-represent locals.
            if unit.get("residence") == "non_local" and i % 2:
                script = [{"outcome": "non_contact"}]
            for attempt in script:
                r = await visits.post(
                    f"/v1/survey-waves/{wave_id}/units/{unit['unit_id']}/attempts",
                    json={"mode": "phone", "occurred_at": at, **attempt},
                    headers=officer,
                )
                assert r.status_code in (200, 409), r.text  # 409: an opted-out unit
    return wave_id


async def test_survey_figures_are_recomputed_by_the_oracle_and_equal_visits_estimates(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        proc = ProcessorProcess(metrics_broker, f"survey-{uuid.uuid4().hex[:8]}", tmp_path, "p")
        proc.start()
        try:
            wave_id = await _record_wave(p)

            async def drained() -> bool:
                await p.pump()
                return await p.pending() == 0

            await wait_for(drained, timeout=60, message="relays did not drain")
            lines: list[str] = []
            code = await verify(p.dsns, metrics_broker, wait=120, echo=lines.append)
            assert code == 0, "\n".join(lines) + "\n" + proc.tail()
            report = await verify_once(p.dsns, metrics_broker)
            # The survey cells were compared, not merely absent on both sides.
            assert report.streamed_facts == report.stored_facts > 100
        finally:
            proc.stop()
        admin = _headers(p, "admin")
        r = await p.clients["visits"].get(f"/v1/survey-waves/{wave_id}/estimates", headers=admin)
        assert r.status_code == 200, r.text
        want = r.json()
        async with figures_api(tmp_path / "api", metrics_broker, p.metrics_dsn) as (api, kernel):
            today = datetime.now(UTC).date()
            r = await api.get(
                "/v1/figures",
                params={"scope": BUREAU, "from": (today - timedelta(days=5)).isoformat(),
                        "to": (today + timedelta(days=1)).isoformat()},
                headers={"Authorization": "Bearer " + issue_token(
                    kernel, subject="c", roles=["commander"], scopes=[BUREAU])},
            )  # fmt: skip
            assert r.status_code == 200, r.text
        survey = r.json()["figures"]["survey"]
        [got] = survey["waves"]
        assert survey["latest"] == wave_id == got["wave_id"]
        assert got["stations"] == want["stations"]
        assert got["scope"] == want["county"]
        county = want["county"]
        assert county["dispositions"]["completed"] and county["dispositions"]["partial"]
        assert county["satisfaction"]["weighted"]["n"] > 20
