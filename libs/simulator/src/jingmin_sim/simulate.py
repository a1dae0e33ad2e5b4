"""One simulation run end to end: bureaus, stories, execution, and what it did."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from jingmin_sim.api import Actor, Api, RequestLog, Stats, TokenSource, iso
from jingmin_sim.engine import Options, Run
from jingmin_sim.geography import Bureau, build_bureau, pick_bureaus
from jingmin_sim.stories import arrivals

STREAMS = (
    "cases",
    "callbacks",
    "complaints",
    "supervision",
    "visits",
    "engagements",
    "surveys",
)
# The service each stream needs; a stream whose service is not reachable is left out.
NEEDS = {
    "cases": "intake",
    "callbacks": "visits",
    "complaints": "complaints",
    "supervision": "complaints",
    "visits": "visits",
    "engagements": "visits",
    "surveys": "visits",
}


@dataclass
class Config:
    seed: str = "jingmin"
    bureaus: int = 1
    bureau_codes: list[str] | None = None
    stations: int = 6
    days: float = 1.0
    end: datetime | None = None
    live: bool = False
    rate: float = 1.0
    concurrency: int = 16
    discover_timeout: float = 60.0
    poll_interval: float = 0.5
    progress: bool = True
    include: frozenset[str] = frozenset(STREAMS)
    # Every callback answered promptly, with all three answers (engine.Options.drill).
    drill: bool = False

    def window(self) -> tuple[datetime, datetime]:
        span = timedelta(days=self.days)
        if span <= timedelta(0):
            raise ValueError("the window must be longer than zero (--days/--hours)")
        if self.live:
            start = (self.end or datetime.now(UTC)).replace(microsecond=0)
            return start, start + span
        # Backfill ends at a whole minute, so two runs started in the same minute (or
        # given the same --end) post identical requests.
        end = self.end or datetime.now(UTC).replace(second=0, microsecond=0)
        return end - span, end


@dataclass
class Result:
    config: Config
    start: datetime
    end: datetime
    stats: Stats
    tallies: Counter[str]
    log: RequestLog
    stories: dict[str, int]
    seconds: float
    skipped_streams: dict[str, str] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, float | None]:
        """The headline figures of what was simulated, as the boards should come to show."""
        t = self.tallies

        def ratio(num: float, den: float) -> float | None:
            return round(num / den, 4) if den else None

        answers = {k: v for k, v in t.items() if k.startswith("answers.") and ".satisfaction." in k}
        sat = sum(v for k, v in answers.items() if k.endswith(".satisfied"))
        basic = sum(v for k, v in answers.items() if k.endswith(".basically_satisfied"))
        dis = sum(v for k, v in answers.items() if k.endswith(".dissatisfied"))
        sec = {k: v for k, v in t.items() if k.startswith("answers.") and ".security." in k}
        safe = sum(
            v for k, v in sec.items() if k.endswith(".safe") or k.endswith(".basically_safe")
        )
        attempts = sum(v for k, v in t.items() if k.startswith("callbacks.attempt."))
        visits = t["visits.completed"] + t["visits.nobody_home"] + t["visits.refused"]
        complaints = sum(v for k, v in t.items() if k.startswith("complaints.filed."))
        survey_sat = {
            v: t[f"survey.answers.satisfaction.{v}"]
            for v in ("satisfied", "basically_satisfied", "dissatisfied")
        }
        survey_sec = {
            v: t[f"survey.answers.security.{v}"]
            for v in ("safe", "basically_safe", "not_very_safe", "unsafe")
        }
        return {
            "cases": t["cases"],
            "dispatch_on_time": ratio(
                t["dispatch.on_time"], t["dispatch.on_time"] + t["dispatch.late"]
            ),
            "arrival_on_time": ratio(
                t["arrival.on_time"], t["arrival.on_time"] + t["arrival.late"]
            ),
            "one_visit_rate": ratio(
                t["service.one_visit"], t["service.one_visit"] + t["service.repeat_visits"]
            ),
            "satisfaction_rate": ratio(sat + basic, sat + basic + dis),
            "strict_satisfaction_rate": ratio(sat, sat + basic + dis),
            "security_rate": ratio(safe, sum(sec.values())),
            "contact_rate": ratio(t["callbacks.attempt.reached"], attempts),
            "complaints_per_1000_cases": ratio(1000 * complaints, t["cases"]),
            "visit_refusal_rate": ratio(t["visits.nobody_home"] + t["visits.refused"], visits),
            # The resident survey, unweighted: AAPOR RR1 over the units drawn (those not
            # attempted in the window count as of unknown eligibility), and the answers.
            "survey_response_rate": ratio(
                t["survey.completed"], t["survey.units"] - t["survey.ineligible"]
            ),
            "survey_satisfaction_rate": ratio(
                survey_sat["satisfied"] + survey_sat["basically_satisfied"],
                sum(survey_sat.values()),
            ),
            "survey_security_rate": ratio(
                survey_sec["safe"] + survey_sec["basically_safe"], sum(survey_sec.values())
            ),
        }

    def to_json(self) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        for (service, endpoint, status), n in sorted(self.stats.by_endpoint.items()):
            requests.setdefault(f"{service} {endpoint}", {})[str(status)] = n
        return {
            "seed": self.config.seed,
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "mode": "live" if self.config.live else "backfill",
            "seconds": round(self.seconds, 1),
            "requests": requests,
            "retries": dict(self.stats.retries),
            "errors": [
                {
                    "endpoint": e,
                    "status": st,
                    "title": title,
                    "count": n,
                    "example": self.stats.examples.get((e, st, title), ""),
                }
                for (e, st, title), n in self.stats.errors.most_common()
            ]
            + [{"transport": k, "count": n} for k, n in self.stats.transport_failures.items()],
            "stories": self.stories,
            "skipped_streams": self.skipped_streams,
            "tallies": dict(sorted(self.tallies.items())),
            "figures": self.figures(),
            "checks": self.checks,
        }


async def reachable(clients: Mapping[str, httpx.AsyncClient]) -> dict[str, str]:
    """Which services answer /healthz; the reason for each that does not."""
    problems = {}
    for name, client in clients.items():
        try:
            r = await client.get("/healthz")
            if r.status_code != 200:
                problems[name] = f"/healthz answered {r.status_code}"
        except httpx.HTTPError as exc:
            problems[name] = f"not reachable ({type(exc).__name__})"
    return problems


async def register_units(api: Api, bureaus: list[Bureau], at: datetime) -> None:
    """Each simulated station in intake's unit register, as its bureau admin would enter it,
    so the boards, the JSON API and the monthly report show names. A station an earlier run
    registered answers 409, which is no error (the same run again gets its first answer).
    Without an admin token (a token file with none) or with one refused (403), stations stay
    unnamed: names are for people reading the figures, not part of the workload."""
    for bureau in bureaus:
        admin = Actor("admin", f"{bureau.code}-admin", bureau.code)
        try:
            api.tokens.token(admin)
        except KeyError:
            return
        for station in bureau.stations:
            await api.request(
                "intake",
                "POST",
                "/v1/units",
                admin,
                endpoint="/v1/units",
                story=f"unit/{station.code}",
                json_body={"code": station.code, "name": station.unit_name, "occurred_at": iso(at)},
                expect=(403, 409),
            )


async def simulate(
    config: Config,
    clients: Mapping[str, httpx.AsyncClient],
    tokens: TokenSource,
    *,
    sms_sink: Any = None,
    log: RequestLog | None = None,
    check_health: bool = True,
    stop_arrivals: asyncio.Event | None = None,
) -> Result:
    """Simulate `config` against the services behind `clients`; only through their APIs.

    Once `stop_arrivals` is set (backfill), no new story of the window starts; the
    follow-ups of those already begun (callbacks, recovery orders...) still run.
    """
    start, end = config.window()
    codes = pick_bureaus(config.bureaus, config.bureau_codes)
    bureaus = [build_bureau(code, config.stations, config.seed) for code in codes]
    down = await reachable(clients) if check_health else {}
    available = {name for name in clients if name not in down}
    skipped = {
        stream: f"{NEEDS[stream]}: {down.get(NEEDS[stream], 'no base URL')}"
        for stream in config.include
        if NEEDS[stream] not in available
    }
    if "cases" in skipped:
        raise RuntimeError(f"intake is required: {skipped['cases']}")
    include = frozenset(config.include) - set(skipped)
    api = Api(clients, tokens, seed=config.seed, concurrency=config.concurrency, log=log)
    options = Options(
        seed=config.seed,
        start=start,
        end=end,
        live=config.live,
        rate=config.rate,
        concurrency=config.concurrency,
        discover_timeout=config.discover_timeout,
        poll_interval=config.poll_interval,
        progress=config.progress,
        include=include,
        drill=config.drill,
    )
    await register_units(api, bureaus, start)
    run = Run(api, bureaus, options)
    run.sms_sink = sms_sink
    run.stop_arrivals = stop_arrivals
    began = time.monotonic()
    await run.execute(iter(arrivals(run)))
    return Result(
        config=config,
        start=start,
        end=end,
        stats=api.stats,
        tallies=run.tallies,
        log=api.log,
        stories={
            "started": run.started,
            "finished": run.finished,
            "stopped_on_error": run.stopped,
            "crashed": run.failed,
            "beyond_window": run.cut,
        },
        seconds=time.monotonic() - began,
        skipped_streams=skipped,
    )


def render(result: Result) -> str:
    """The human summary printed at the end of `jingmin simulate`."""
    lines = []
    c = result.config
    lines.append(
        f"simulated {result.start:%Y-%m-%d %H:%M} → {result.end:%Y-%m-%d %H:%M} UTC "
        f"({'live' if c.live else 'backfill'}), seed {c.seed!r}, "
        f"{len(pick_bureaus(c.bureaus, c.bureau_codes))} bureau(s) × {c.stations} stations, "
        f"rate ×{c.rate}, in {result.seconds:.0f} s"
    )
    s = result.stories
    lines.append(
        f"stories: {s['started']} run, {s['stopped_on_error']} stopped on an error, "
        f"{s['crashed']} crashed, {s['beyond_window']} follow-ups beyond the window"
    )
    for stream, why in sorted(result.skipped_streams.items()):
        lines.append(f"left out: {stream} ({why})")
    lines.append("")
    lines.append(f"{'requests by endpoint':64} {'2xx':>7} {'other':>7}")
    per: dict[str, list[int]] = {}
    for (service, endpoint, status), n in result.stats.by_endpoint.items():
        row = per.setdefault(f"{service:10} {endpoint}", [0, 0])
        row[0 if 200 <= status < 300 else 1] += n
    for name, (ok, other) in sorted(per.items()):
        lines.append(f"{name:64} {ok:7d} {other:7d}")
    total = result.stats.requests
    lines.append(f"{'total':64} {total:7d}   retries {sum(result.stats.retries.values())}")
    errors = result.stats.errors.most_common() + [
        ((k, 0, "transport"), n) for k, n in result.stats.transport_failures.items()
    ]
    lines.append("")
    lines.append(f"errors: {result.stats.error_count}")
    for (endpoint, status, title), n in errors[:20]:
        example = result.stats.examples.get((endpoint, status, title), "")
        lines.append(f"  {n:6d} × {status} {endpoint} {title}")
        if example:
            lines.append(f"           e.g. {example[:160]}")
    lines.append("")
    lines.append("figures of what was simulated (what the boards should show):")
    for name, value in result.figures().items():
        shown = (
            "n/a"
            if value is None
            else f"{value:.1%}"
            if name.endswith(("rate", "time"))
            else f"{value:g}"
        )
        lines.append(f"  {name:28} {shown}")
    for check in result.checks:
        lines.append(f"check {check.get('name')}: {check.get('status')} {check.get('detail', '')}")
    return "\n".join(lines)
