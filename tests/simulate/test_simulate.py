"""`jingmin simulate` against the platform in one process: same seed, same requests, and the
stores hold what the simulator says it did.

Each run gets fresh databases; the outbox rows travel to the consumers through an in-process
bridge (what the relay and the broker do in production), so callbacks, complaints and
service-recovery orders appear as they would, and the simulator finds them through the APIs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventkit.testing import DatabaseFactory
from jingmin_sim.api import DevTokens, RequestLog
from jingmin_sim.simulate import Config, Result, render, simulate
from jingmin_sim.windows import fixed_window_end
from simkit import Platform, platform

pytestmark = pytest.mark.integration

# A fixed window in the past (Thursday 2026-11-19 00:00 to Friday 12:00 Beijing): both runs
# simulate exactly it, and so does every run of the suite, whatever day it runs
# (fixed_window_end: unless the clock reads earlier than that).
END = fixed_window_end(datetime(2026, 11, 20, 4, 0, tzinfo=UTC), 1.5)


def config(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "seed": "test-seed",
        "bureaus": 1,
        "stations": 2,
        "days": 1.5,
        "end": END,
        "rate": 1.0,
        "concurrency": 8,
        "discover_timeout": 20.0,
        "poll_interval": 0.05,
        "progress": False,
    }
    values.update(overrides)
    return Config(**values)


async def run_once(
    fresh_database: DatabaseFactory, home: Path, cfg: Config
) -> tuple[Result, Platform, dict[str, Any]]:
    async with platform(fresh_database, home) as p:
        stop = asyncio.Event()
        bridge = asyncio.create_task(p.bridge(stop))
        try:
            result = await simulate(cfg, p.clients, DevTokens(p.settings), log=RequestLog())
        finally:
            stop.set()
            await bridge
        stored = await _stored(p, cfg.end or END)
    return result, p, stored


async def _stored(p: Platform, end: datetime) -> dict[str, Any]:
    intake, visits, complaints = p.pools["intake"], p.pools["visits"], p.pools["complaints"]
    return {
        "intake_types": {
            r["type"]: r["n"]
            for r in await intake.fetch("SELECT type, count(*) AS n FROM events GROUP BY type")
        },
        "field_cases": await intake.fetchval("SELECT count(*) FROM cases WHERE channel = 'field'"),
        "cases": await intake.fetchval("SELECT count(*) FROM cases"),
        "visits_types": {
            r["type"]: r["n"]
            for r in await visits.fetch("SELECT type, count(*) AS n FROM events GROUP BY type")
        },
        "complaints_types": {
            r["type"]: r["n"]
            for r in await complaints.fetch("SELECT type, count(*) AS n FROM events GROUP BY type")
        },
        # A survey frame and its draw are stamped when they are recorded (the visits API
        # takes no event time for them): in a backfill, after the window, by design.
        "future_events": sum(
            [
                await pool.fetchval(
                    """SELECT count(*) FROM events WHERE occurred_at > $1
                       AND type NOT IN ('SurveyFrameImported', 'SurveySampleDrawn')""",
                    end,
                )
                for pool in (intake, visits, complaints)
            ]
        ),
        "survey_answered": await visits.fetchval(
            """SELECT count(*) FROM events WHERE type = 'SurveyAttemptRecorded'
               AND data->'answers' ? 'satisfaction'"""
        ),
        "dead_letters": len(p.dead.sent),
    }


async def test_same_seed_same_requests_and_the_stores_hold_them(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    first, _, stored = await run_once(fresh_database, tmp_path / "a", config())
    print(render(first))
    second, _, again = await run_once(fresh_database, tmp_path / "b", config())

    # Determinism: the same requests, in each story the same order, with the same bodies
    # (server ids replaced by the story's own names), whatever the interleaving.
    assert first.log.sorted_entries() == second.log.sorted_entries()
    assert len(first.log.entries) > 100
    assert "{unknown}" not in "".join(e[3] + e[4] for e in first.log.entries)
    assert first.tallies == second.tallies
    assert stored == again

    # The run went through cleanly and reached every stream.
    assert first.stats.error_count == 0, render(first)
    assert first.stories["crashed"] == 0
    assert stored["dead_letters"] == 0
    t = first.tallies
    assert t["cases"] >= 30
    assert t["callbacks.answered.case_resolved"] > 0
    assert t["visits.completed"] > 0

    # The stores hold what the simulator says it did, all of it in the simulated past.
    intake_types = stored["intake_types"]
    assert intake_types["CaseReceived"] == t["cases"] + stored["field_cases"]
    assert stored["cases"] == t["cases"] + stored["field_cases"]
    assert intake_types.get("CaseResolved", 0) == t["cases.resolved"] + t["cases.reopened"]
    assert intake_types.get("CaseDispatched", 0) == t["dispatch.on_time"] + t["dispatch.late"]
    assert intake_types.get("ArrivedOnScene", 0) == t["arrival.on_time"] + t["arrival.late"]
    assert stored["field_cases"] == t["cases.field"]
    answered = sum(v for k, v in t.items() if k.startswith("callbacks.answered."))
    assert stored["visits_types"].get("CallbackAnswered", 0) == answered
    attempts = sum(v for k, v in t.items() if k.startswith("callbacks.attempt."))
    assert stored["visits_types"].get("CallbackAttempted", 0) == attempts
    visits = sum(v for k, v in t.items() if k.startswith("visits.programme."))
    assert stored["visits_types"].get("VisitScheduled", 0) == visits
    assert stored["visits_types"].get("VisitCompleted", 0) == t["visits.completed"]
    filed = sum(v for k, v in t.items() if k.startswith("complaints.filed."))
    assert stored["complaints_types"].get("ComplaintReceived", 0) == filed
    assert stored["future_events"] == 0
    # What follows resolved alarms: classifications and enforcement decisions, each with the
    # callback visits' policy opens for it (scheduled or suppressed, never missing).
    assert intake_types.get("CaseClassified", 0) == t["cases.classified"] > 0
    decided = sum(v for k, v in t.items() if k.startswith("cases.enforcement."))
    assert intake_types.get("EnforcementDecided", 0) == decided
    followed = sum(
        t.get(f"callbacks.{trigger}", 0)
        for trigger in ("crime_victim", "preventable_case", "enforcement_decision")
    )
    expected = sum(v for k, v in t.items() if k.startswith("callbacks.expected."))
    assert 0 < followed <= expected

    # The resident survey: one wave, each station's frame and draw, and the fieldwork the
    # simulator tallied is what the wave's stream holds.
    visits_types = stored["visits_types"]
    assert visits_types.get("SurveyWaveDefined", 0) == t["survey.waves"] == 1
    assert visits_types.get("SurveySampleDrawn", 0) == 2
    tried = sum(v for k, v in t.items() if k.startswith("survey.attempts."))
    assert visits_types.get("SurveyAttemptRecorded", 0) == tried > 0
    assert t["survey.completed"] == t["survey.attempts.completed"] > 0
    assert t["survey.attempts.non_contact"] > 0
    answered = sum(v for k, v in t.items() if k.startswith("survey.answers.satisfaction."))
    assert stored["survey_answered"] == answered == t["survey.completed"]
    assert sum(1 for e in first.log.entries if "/survey-waves/" in e[3]) > tried


async def test_no_event_time_lies_beyond_the_window(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    # A window ending at 03:30 in Shanghai. Visits planned for the next morning were once
    # scheduled with a second, shorter lead: hours after the window's end, which in a
    # backfill up to now the visits API refuses ("more than 5 minutes in the future").
    end = END.replace(hour=19, minute=30) - timedelta(days=1)
    cfg = config(end=end, days=0.5, bureaus=2, stations=3, include=frozenset({"visits"}))
    result, _, stored = await run_once(fresh_database, tmp_path, cfg)
    assert stored["visits_types"].get("VisitScheduled", 0) > 10
    assert stored["future_events"] == 0
    assert not result.stats.errors


async def test_a_drill_answers_every_callback_with_all_three_values(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    # The chaos load's drill: the callbacks of what a morning's window resolves are all
    # answered (by phone: no SMS sink here) minutes after the resolution, 不满意 among
    # them; each opens a recovery order, reported and closed minutes later, and its
    # follow-up call is answered too. Nothing depends on the hour the suite runs.
    cfg = config(days=3 / 24, bureaus=1, stations=3, drill=True)
    result, _, stored = await run_once(fresh_database, tmp_path, cfg)
    t = result.tallies
    values = {
        v: t[f"answers.case_resolved.satisfaction.{v}"]
        for v in ("satisfied", "basically_satisfied", "dissatisfied")
    }
    assert all(values.values()), values
    assert t["callbacks.left_unanswered"] == t["callbacks.never_called"] == 0
    assert t["supervision.orders.service_recovery"] >= values["dissatisfied"]
    assert t["callbacks.answered.service_recovery"] > 0
    answered = sum(v for k, v in t.items() if k.startswith("callbacks.answered."))
    assert stored["visits_types"].get("CallbackAnswered", 0) == answered
    assert result.stories["crashed"] == 0
    # A drill's window is short, yet the chaos load sees a wave: its first units worked.
    tried = sum(v for k, v in t.items() if k.startswith("survey.attempts."))
    assert stored["visits_types"].get("SurveyAttemptRecorded", 0) == tried > 0
    assert t["survey.waves"] == 1


def _arrivals(cfg: Config) -> list[tuple[str, str]]:
    """The stories a run would start, without running them (nothing is sent)."""
    from jingmin_sim.api import Api
    from jingmin_sim.engine import Options, Run
    from jingmin_sim.geography import build_bureau
    from jingmin_sim.stories import arrivals

    start, end = cfg.window()
    bureaus = [build_bureau(code, cfg.stations, cfg.seed) for code in ("330602", "331127")]
    api = Api({}, DevTokens(None), seed=cfg.seed)
    run = Run(api, bureaus, Options(seed=cfg.seed, start=start, end=end))
    return [(s.at.isoformat(), s.key) for s in arrivals(run)]


def test_another_seed_gives_another_workload_and_windows_agree() -> None:
    week = _arrivals(config(days=7))
    assert week == _arrivals(config(days=7))
    assert week != _arrivals(config(days=7, seed="another"))
    # Contacts are drawn per calendar hour: the last day of a week is the same day run alone.
    # (visits planned early in a window are scheduled at its start, so they are left out)
    day = [a for a in _arrivals(config(days=1)) if a[1].startswith("case/")]
    assert day and set(day) <= set(week)
    # A week of two bureaus of two stations (a city district, a mountain county).
    cases = [k for _, k in week if k.startswith("case/")]
    assert 400 < len(cases) < 1500


def test_the_kernel_cli_loads_simulate_as_a_plugin() -> None:
    import typer
    from eventkit import cli
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    def tail() -> None:
        """A kernel command: a plugin may not take its name."""

    assert "simulate" in cli.load_plugins(app)  # beside other services' plugins (report)
    result = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for option in ("--bureaus", "--stations-per-bureau", "--days", "--rate", "--compress",
                   "--seed", "--concurrency", "--intake-url", "--token-file"):  # fmt: skip
        assert option in result.output
