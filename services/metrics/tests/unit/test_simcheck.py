"""The figures check of `jingmin simulate --checks`: comparison, tolerance, notes, and the
whole check against a fake metrics API (no stack)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
from jingmin_metrics.simcheck import (
    Count,
    Row,
    check_simulation,
    compare,
    histogram_counts,
    judge,
    period,
    platform_counts,
    simulated_rows,
    tolerance,
    volume,
    wait_until_settled,
)
from jingmin_sim.checks import CheckContext

TALLIES = Counter(
    {
        "cases": 400,
        "issues.raised": 10,
        "dispatch.on_time": 89,
        "dispatch.late": 11,
        "arrival.on_time": 80,
        "arrival.late": 20,
        "service.one_visit": 94,
        "service.repeat_visits": 6,
        "answers.case_resolved.satisfaction.satisfied": 150,
        "answers.case_resolved.satisfaction.basically_satisfied": 40,
        "answers.case_resolved.satisfaction.dissatisfied": 10,
        "answers.case_resolved.security.safe": 180,
        "answers.case_resolved.security.basically_safe": 10,
        "answers.case_resolved.security.unsafe": 10,
        "answers.service_recovery.satisfaction.satisfied": 5,
        "answers.service_recovery.security.safe": 5,
        "callbacks.attempt.reached": 205,
        "callbacks.attempt.unreachable": 80,
        "callbacks.attempt.declined": 15,
        "complaints.filed.intake": 1,
        "complaints.filed.direct": 1,
        "visits.completed": 81,
        "visits.nobody_home": 14,
        "visits.refused": 5,
    }
)


def rate(num: int, den: int) -> dict[str, Any]:
    return {"numerator": num, "denominator": den, "rate": round(num / den, 4) if den else None}


def figures_body(**over: dict[str, Any]) -> dict[str, Any]:
    """A `/v1/figures` "figures" body agreeing with TALLIES (online services apart)."""
    body: dict[str, Any] = {
        "intake": {
            "received": 410,
            "arrival_on_target": rate(80, 100),
            "one_visit": rate(94, 100),  # 30 online applications: unrecorded, apart
            "services_unrecorded": 30,
            "dispatch_latency": {"count": 100, "mean_seconds": 31.5},
        },
        "callbacks": {
            "satisfaction": rate(190, 200),
            "satisfaction_strict": rate(150, 200),
            "security": rate(190, 200),
            "contact": rate(205, 300),
            "service_recovery": rate(5, 5),
        },
        "complaints": {"received": 2, "per_1000_cases": 4.88},
        "visits": {"attempted": 100, "refusal": rate(19, 100)},
    }
    for section, values in over.items():
        body[section] = {**body[section], **values}
    return body


def rows_for(platform: dict[str, Count], **kw: Any) -> dict[str, Row]:
    rows = compare(
        simulated_rows(TALLIES, {}), platform, visits_simulated=100, all_time=(410, 410), **kw
    )
    return {r.figure: r for r in rows}


def with_dispatch(body: dict[str, Any], within: int = 89, count: int = 100) -> dict[str, Count]:
    counts = platform_counts(body)
    counts["dispatch within 60 s"] = Count(within, count)
    return counts


def test_tolerance_is_a_share_of_the_denominator_with_a_floor() -> None:
    assert tolerance(10) == 2
    assert tolerance(1000) == 10
    assert tolerance(1001) == 11


def test_judge_exact_within_tolerance_and_beyond() -> None:
    exact = judge(Row("x", Count(80, 100), Count(80, 100)))
    assert exact.verdict == "ok"
    close = judge(Row("x", Count(80, 100), Count(81, 100)))  # one item moved: rounding
    assert close.verdict == "ok"
    far = judge(Row("x", Count(80, 100), Count(90, 100)))
    assert far.verdict == "FAIL" and "platform 90 > simulated 80" in far.problem
    assert "platform 10 (the rest) < simulated 20" in far.problem
    lost = judge(Row("x", volume(100), volume(90), is_volume=True))
    assert lost.verdict == "FAIL" and "(tolerance 2)" in lost.problem


def test_explained_differences_pass_but_only_in_the_allowed_direction() -> None:
    # Up to `fewer` simulated items may be missing (SMS answers recorded when posted).
    assert judge(Row("x", Count(80, 100), Count(75, 92), fewer=8)).verdict == "explained"
    assert judge(Row("x", Count(80, 100), Count(68, 90), fewer=8)).verdict == "FAIL"
    # ... in all: six fewer successes and six fewer others is twelve missing.
    both = judge(Row("x", Count(80, 100), Count(74, 88), fewer=8))
    assert both.verdict == "FAIL" and "lacks 12" in both.problem
    # Any number more successes, but not more failures (a row that allows it).
    more = Row("x", Count(94, 100), Count(144, 150), more_num=None)
    assert judge(more).verdict == "explained"
    worse = Row("x", Count(94, 100), Count(144, 160), more_num=None)
    assert judge(worse).verdict == "FAIL" and "(the rest)" in worse.problem
    # Foreign traffic: more of both, never fewer.
    foreign = Row("x", Count(80, 100), Count(150, 200))
    foreign.allow_more()
    assert judge(foreign).verdict == "explained"
    short = Row("x", Count(80, 100), Count(70, 200))
    short.allow_more()
    assert judge(short).verdict == "FAIL"


def test_simulated_rows_follow_the_platform_definitions() -> None:
    rows = {r.figure: r for r in simulated_rows(TALLIES, {"satisfaction_rate": 0.9512})}
    # Service-recovery follow-ups are left out of satisfaction and security.
    assert rows["satisfaction"].simulated == Count(190, 200)
    assert rows["satisfaction (strict)"].simulated == Count(150, 200)
    assert rows["sense of security"].simulated == Count(190, 200)
    assert any("service-recovery" in n for n in rows["satisfaction"].notes)
    assert rows["satisfaction"].headline == 0.9512
    # Field cases (issues raised) are cases on the platform.
    assert rows["cases received"].simulated == volume(410)
    assert rows["callback contact rate"].simulated == Count(205, 300)
    assert rows["visits refused/nobody home"].simulated == Count(19, 100)
    # Online applications record no visit: outside the rate on both sides, no allowance.
    assert rows["one-visit completion"].simulated == Count(94, 100)
    assert rows["one-visit completion"].more_num == 0


def test_a_platform_that_agrees_passes_and_one_that_differs_fails() -> None:
    rows = rows_for(with_dispatch(figures_body()))
    assert {r.verdict for r in rows.values()} <= {"ok", "explained", "-"}, rows
    assert rows["one-visit completion"].verdict == "ok"
    assert rows["satisfaction"].verdict == "ok"

    bad = rows_for(with_dispatch(figures_body(callbacks={"satisfaction": rate(160, 200)})))
    assert bad["satisfaction"].verdict == "FAIL"
    late = rows_for(with_dispatch(figures_body(), within=70))
    assert late["dispatch within 60 s"].verdict == "FAIL"


def test_traffic_the_run_did_not_make_is_named_and_only_missing_items_fail() -> None:
    body = figures_body(
        intake={"received": 900, "arrival_on_target": rate(170, 200)},
        callbacks={"satisfaction": rate(380, 420)},
    )
    rows = rows_for(with_dispatch(body))
    assert "490 cases" in " ".join(rows["cases received"].notes)
    assert rows["arrival on target"].verdict == "explained"
    assert rows["satisfaction"].verdict == "explained"
    missing = figures_body(intake={"received": 900}, callbacks={"satisfaction": rate(100, 120)})
    assert rows_for(with_dispatch(missing))["satisfaction"].verdict == "FAIL"


def test_period_is_the_bureau_days_of_the_window() -> None:
    start = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)  # 23:00 Beijing
    end = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 00:00 Beijing the 3rd: not included
    first, last = period(start, end)
    assert (first.isoformat(), last.isoformat()) == ("2026-03-01", "2026-03-02")


def test_histogram_counts_reads_the_bureaus_dispatch_buckets() -> None:
    text = """# TYPE jingmin_intake_dispatch_latency_seconds histogram
jingmin_intake_dispatch_latency_seconds_bucket{bureau="330602",le="60.0"} 89.0
jingmin_intake_dispatch_latency_seconds_bucket{bureau="330602",le="300.0"} 99.0
jingmin_intake_dispatch_latency_seconds_bucket{bureau="330602",le="+Inf"} 100.0
jingmin_intake_dispatch_latency_seconds_count{bureau="330602"} 100.0
jingmin_intake_dispatch_latency_seconds_sum{bureau="330602"} 3150.0
jingmin_intake_dispatch_latency_seconds_bucket{bureau="330681",le="60.0"} 5.0
jingmin_intake_dispatch_latency_seconds_count{bureau="330681"} 9.0
# TYPE jingmin_intake_cases_received counter
jingmin_intake_cases_received_total{bureau="330602",kind="alarm"} 300.0
jingmin_intake_cases_received_total{bureau="330602",kind="service"} 110.0
jingmin_intake_cases_received_total{bureau="330681",kind="alarm"} 9.0
"""
    assert histogram_counts(text, ["330602"]) == (Count(89, 100), 410)
    assert histogram_counts(text, ["330602", "330681"]) == (Count(94, 109), 419)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


async def test_waiting_ends_when_applied_facts_stop_changing_or_time_is_up() -> None:
    clock = FakeClock()
    values = iter([(10, 12), (50, 12), (90, 12)])

    async def fetch() -> tuple[int, int]:
        return next(values, (90, 12))

    done = await wait_until_settled(fetch, settle=5, wait=60, clock=clock, sleep=clock.sleep)
    assert done.caught_up and done.applied == 90 and 7 <= done.waited <= 8

    clock = FakeClock()

    async def nobody() -> tuple[int, int]:
        return (0, 0)

    stuck = await wait_until_settled(nobody, settle=5, wait=20, clock=clock, sleep=clock.sleep)
    assert not stuck.caught_up and "no metrics processor" in stuck.message


class Tokens:
    def __init__(self) -> None:
        self.actors: list[Any] = []

    def token(self, actor: Any) -> str:
        self.actors.append(actor)
        return f"token-{actor.scope}"


def fake_metrics(body: dict[str, Any], within: int = 89) -> httpx.AsyncClient:
    metrics = f"""# TYPE jingmin_intake_dispatch_latency_seconds histogram
jingmin_intake_dispatch_latency_seconds_bucket{{bureau="330602",le="60.0"}} {within}.0
jingmin_intake_dispatch_latency_seconds_count{{bureau="330602"}} 100.0
# TYPE jingmin_intake_cases_received counter
jingmin_intake_cases_received_total{{bureau="330602",kind="alarm"}} 410.0
"""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if request.url.path == "/metrics":
            return httpx.Response(200, text=metrics)
        if request.url.path == "/v1/figures":
            assert request.headers["Authorization"] == "Bearer token-330602"
            assert request.url.params["from"] == "2026-03-01"
            assert request.url.params["to"] == "2026-03-02"
            return httpx.Response(
                200,
                json={
                    "scope": "330602",
                    "events_applied": 1234,
                    "partitions_reporting": 12,
                    "figures": body,
                },
            )
        return httpx.Response(404)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://m.test")


def simulated() -> Any:
    return SimpleNamespace(
        start=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        end=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        tallies=TALLIES,
        figures=lambda: {"satisfaction_rate": 0.9512, "complaints_per_1000_cases": 5.0},
    )


async def test_the_check_reads_the_api_and_prints_the_table() -> None:
    tokens = Tokens()
    context = CheckContext(bureaus=("330602",), tokens=tokens)
    async with fake_metrics(figures_body()) as client:
        outcome = await check_simulation(
            simulated(), {"metrics": client}, context=context, settle=0.0, wait=5, poll=0.01
        )
    assert outcome["status"] == "pass", outcome["detail"]
    detail = outcome["detail"]
    assert "caught up: 1234 events applied" in detail
    assert "satisfaction" in detail and "95.0% 190/200" in detail
    assert "(headline 95.1%)" in detail
    assert {a.role for a in tokens.actors} == {"supervisor"}

    async with fake_metrics(figures_body(), within=60) as client:
        failed = await check_simulation(
            simulated(), {"metrics": client}, context=context, settle=0.0, wait=5, poll=0.01
        )
    assert failed["status"] == "fail"
    assert failed["failures"] and "dispatch within 60 s" in failed["failures"][0]


async def test_without_a_metrics_service_or_tokens_the_check_is_skipped() -> None:
    assert (await check_simulation(simulated(), {}))["status"] == "skipped"
    async with fake_metrics(figures_body()) as client:
        outcome = await check_simulation(simulated(), {"metrics": client})
    assert outcome["status"] == "skipped"
