"""The resident survey end to end (issue 18): a wave recorded through the visits API, its
events relayed to Kafka and applied by a faust processor; `jingmin verify metrics` (the SQL
oracle over visits' event store, which knows the units the topic never carries) finds zero
differences, and the metrics JSON states exactly visits' own estimates for the wave."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eventkit.auth import issue_token
from eventkit.testing import DatabaseFactory, wait_for
from jingmin_metrics.oracle.verify import verify, verify_once
from metricskit import ProcessorProcess, platform, record_survey_wave
from support import figures_api

pytestmark = pytest.mark.integration

BUREAU = "330602"
STATIONS = (BUREAU + "001", BUREAU + "002")


async def test_survey_figures_are_recomputed_by_the_oracle_and_equal_visits_estimates(
    fresh_database: DatabaseFactory, tmp_path: Path, metrics_broker: str
) -> None:
    async with platform(fresh_database, tmp_path, metrics_broker) as p:
        proc = ProcessorProcess(metrics_broker, f"survey-{uuid.uuid4().hex[:8]}", tmp_path, "p")
        proc.start()
        try:
            wave_id = await record_survey_wave(p, BUREAU, STATIONS)

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
        admin = {
            "Authorization": "Bearer "
            + issue_token(p.settings, subject="adm01", roles=["admin"], scopes=[BUREAU])
        }
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
