"""`jingmin simulate --checks`: do the figures the platform computes match what was simulated?

Registered in entry point group `jingmin.sim.checks` (see `jingmin_sim.checks`). After a
simulation it waits until the metrics have caught up (the processors' applied facts, as
`GET /v1/figures` reports them, stop changing), reads the figures of the simulated bureaus
over the bureau days of the simulated window through the metrics API (as each bureau's
supervisor, with the simulator's own tokens), and prints figure, simulated, platform and
difference side by side.

Figures are compared by their counts, not only their rates. For each figure the
simulator's tallies give a numerator and a denominator *as the platform defines them*
(service-recovery follow-ups left out of satisfaction, field cases counted as cases...);
the platform's must agree within a tolerance, except where a definition explains a
difference, which the table then names in a note:

- the period holds traffic this run did not make (earlier runs, events on the first bureau
  day before the window starts): the platform may count *more* of both outcomes, never
  fewer (recognised when it holds more cases, visits or complaints than were simulated);
- answers given on the public SMS page are recorded when posted, not back-dated: up to
  that many answers (and complaints ticked on the page) may fall after the period;
- online service applications record no service visit: the platform counts them apart
  (`services_unrecorded`), outside the one-visit rate, as the simulator does;
- field cases (issues raised in visits) are cases on the platform; complaints found by
  complaints but not by the simulator's polling are still complaints;
- the within-60-s share of dispatches is read from the Prometheus histogram on `/metrics`
  (the JSON API has it too now, `intake.dispatch_within_60s`), which covers all event
  time, not just the window;
- event times are posted in whole seconds while the simulator judged lateness on its own
  sub-second clock: a step within a second of its target can land on either side.

The tolerance is `TOLERANCE_SHARE` of the denominator, at least `TOLERANCE_MIN` items.
A difference beyond what the notes allow fails the check.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx

NAME = "figures"
TOLERANCE_SHARE = 0.01
TOLERANCE_MIN = 2
BEIJING = timezone(timedelta(hours=8))
SUPERVISOR = "jingmin-sim-check"


# ---- comparison (no I/O) ------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    """A rate's numerator and denominator (a plain volume: both the same)."""

    num: int
    den: int

    @property
    def rest(self) -> int:
        return self.den - self.num

    @property
    def rate(self) -> float | None:
        return self.num / self.den if self.den else None


def volume(n: int) -> Count:
    return Count(n, n)


@dataclass
class Row:
    """One figure: what was simulated (aligned to the platform's definition) and what the
    platform computed, with the differences its definitions allow.

    `more_num` / `more_rest`: how many more successes / other items the platform may hold
    than the simulator counted (None: any number). `fewer`: how many simulated items the
    platform may lack. Beyond these, `tolerance(den)` items either way.
    """

    figure: str
    simulated: Count
    platform: Count | None
    headline: float | None = None  # the simulator's own figure, when it differs in definition
    is_volume: bool = False
    more_num: int | None = 0
    more_rest: int | None = 0
    fewer: int = 0
    notes: list[str] = field(default_factory=list)
    informational: bool = False
    verdict: str = ""
    problem: str = ""

    def allow_more(self, n: int | None = None) -> None:
        """Allow any number more (None) or `n` more of both outcomes."""
        self.more_num = None if n is None or self.more_num is None else self.more_num + n
        self.more_rest = None if n is None or self.more_rest is None else self.more_rest + n


def tolerance(den: int, share: float = TOLERANCE_SHARE, least: int = TOLERANCE_MIN) -> int:
    return max(least, math.ceil(share * den))


def judge(row: Row, share: float = TOLERANCE_SHARE, least: int = TOLERANCE_MIN) -> Row:
    """Set `row.verdict` to ok, explained or FAIL (with `row.problem`)."""
    if row.informational:
        row.verdict = "-"
        return row
    if row.platform is None:
        row.verdict, row.problem = "FAIL", f"{row.figure}: the platform gave no figure"
        return row
    s, p = row.simulated, row.platform
    if not row.is_volume and s.den == 0 and p.den == 0:
        row.verdict = "no data"
        return row
    tol = tolerance(max(s.den, p.den), share, least)
    parts = [("", s.num, p.num, row.more_num)]
    if not row.is_volume:
        parts.append((" (the rest)", s.rest, p.rest, row.more_rest))
    problems = []
    explained = False
    for label, sim, plat, more in parts:
        if plat < sim - row.fewer - tol:
            problems.append(f"platform {plat}{label} < simulated {sim}")
        elif more is not None and plat > sim + more + tol:
            problems.append(f"platform {plat}{label} > simulated {sim}")
        elif abs(plat - sim) > tol:
            explained = True
    lost = sum(max(0, sim - plat) for _label, sim, plat, _more in parts)
    if not problems and lost > row.fewer + tol:
        problems.append(f"platform lacks {lost} of the simulated items")
    if problems:
        row.verdict = "FAIL"
        row.problem = f"{row.figure}: " + "; ".join(problems) + f" (tolerance {tol})"
    else:
        row.verdict = "explained" if explained else "ok"
    return row


def simulated_rows(tallies: Mapping[str, int], figures: Mapping[str, float | None]) -> list[Row]:
    """What was simulated, as the platform defines each figure (platform counts not yet set)."""
    t = tallies

    def total(prefix: str, suffix: str = "", exclude: str = "\0") -> int:
        return sum(
            v
            for k, v in t.items()
            if k.startswith(prefix) and k.endswith(suffix) and exclude not in k
        )

    def answers(*satisfaction: str) -> int:
        return sum(
            total("answers.", f".satisfaction.{s}", exclude="service_recovery")
            for s in satisfaction
        )

    answered = answers("satisfied", "basically_satisfied", "dissatisfied")
    secure = total("answers.", ".security.safe", exclude="service_recovery") + total(
        "answers.", ".security.basically_safe", exclude="service_recovery"
    )
    recovery = total("answers.service_recovery.satisfaction.")
    sms = t.get("answers.via.sms", 0)
    visits = t.get("visits.completed", 0) + t.get("visits.nobody_home", 0)
    visits += t.get("visits.refused", 0)
    complaints = total("complaints.filed.")
    received = t.get("cases", 0) + t.get("issues.raised", 0)
    on_time, late = t.get("dispatch.on_time", 0), t.get("dispatch.late", 0)
    arrived, arrived_late = t.get("arrival.on_time", 0), t.get("arrival.late", 0)
    one, repeat = t.get("service.one_visit", 0), t.get("service.repeat_visits", 0)
    rows = [
        Row("cases received", volume(received), None, is_volume=True),
        Row("dispatch within 60 s", Count(on_time, on_time + late), None,
            headline=figures.get("dispatch_on_time")),
        Row("arrival on target", Count(arrived, arrived + arrived_late), None,
            headline=figures.get("arrival_on_time")),
        Row("one-visit completion", Count(one, one + repeat), None,
            headline=figures.get("one_visit_rate")),
        Row("satisfaction", Count(answers("satisfied", "basically_satisfied"), answered), None,
            headline=figures.get("satisfaction_rate"), fewer=sms),
        Row("satisfaction (strict)", Count(answers("satisfied"), answered), None,
            headline=figures.get("strict_satisfaction_rate"), fewer=sms),
        Row("sense of security", Count(secure, answered), None,
            headline=figures.get("security_rate"), fewer=sms),
        Row("callback contact rate",
            Count(t.get("callbacks.attempt.reached", 0), total("callbacks.attempt.")), None,
            headline=figures.get("contact_rate")),
        Row("complaints received", volume(complaints), None, is_volume=True, fewer=sms),
        Row("complaints per 1,000 cases", Count(complaints, received), None,
            headline=figures.get("complaints_per_1000_cases"), informational=True),
        Row("visits refused/nobody home",
            Count(t.get("visits.nobody_home", 0) + t.get("visits.refused", 0), visits), None,
            headline=figures.get("visit_refusal_rate")),
    ]  # fmt: skip
    by = {r.figure: r for r in rows}
    if t.get("issues.raised", 0):
        by["cases received"].notes.append(
            f"simulated = {t.get('cases', 0)} cases posted + {t['issues.raised']} issues raised"
            " in visits and engagements (intake opens each as a field case)"
        )
    if recovery:
        for name in ("satisfaction", "satisfaction (strict)", "sense of security"):
            by[name].notes.append(
                f"the simulator's headline counts {recovery} service-recovery follow-up answers;"
                " the platform leaves them out (callbacks.service_recovery): compared without"
            )
    if sms:
        for name in ("satisfaction", "satisfaction (strict)", "sense of security"):
            by[name].notes.append(
                f"{sms} answers came through the SMS page, recorded when posted (not"
                " back-dated): they may fall after the period"
            )
    not_found = t.get("complaints.not_found", 0)
    if not_found:
        by["complaints received"].allow_more(not_found)
        by["complaints received"].notes.append(
            f"{not_found} complaints were filed but not found by the simulator's polling"
        )
    for name in ("dispatch within 60 s", "arrival on target"):
        by[name].notes.append(
            "event times are posted in whole seconds; the simulator judged lateness on its"
            " sub-second clock (a step within a second of its target may differ)"
        )
    by["complaints per 1,000 cases"].notes.append(
        "ratio of the two volumes above (judged there); the denominator includes field cases"
    )
    return rows


def platform_counts(summary: Mapping[str, Any]) -> dict[str, Count]:
    """The platform's counts per figure, from a (summed) `GET /v1/figures` body."""

    def r(section: str, key: str) -> Count:
        value = summary[section][key]
        return Count(int(value["numerator"]), int(value["denominator"]))

    received = int(summary["intake"]["received"])
    complaints = int(summary["complaints"]["received"])
    return {
        "cases received": volume(received),
        "arrival on target": r("intake", "arrival_on_target"),
        "one-visit completion": r("intake", "one_visit"),
        "satisfaction": r("callbacks", "satisfaction"),
        "satisfaction (strict)": r("callbacks", "satisfaction_strict"),
        "sense of security": r("callbacks", "security"),
        "callback contact rate": r("callbacks", "contact"),
        "complaints received": volume(complaints),
        "complaints per 1,000 cases": Count(complaints, received),
        "visits refused/nobody home": r("visits", "refusal"),
    }


def compare(
    rows: list[Row],
    platform: Mapping[str, Count],
    *,
    visits_simulated: int,
    all_time: tuple[int, int] | None = None,
    share: float = TOLERANCE_SHARE,
    least: int = TOLERANCE_MIN,
) -> list[Row]:
    """Fill in the platform's counts, allow for traffic this run did not make, judge.

    `all_time`: (cases the platform received in the bureaus over all event time, cases
    simulated) for the rows read from `/metrics` (dispatch).
    """
    by = {r.figure: r for r in rows}
    for row in rows:
        if row.figure in platform:
            row.platform = platform[row.figure]
    # Other traffic in the period: more cases, visits or complaints than this run made.
    foreign = []
    for name in ("cases received", "complaints received"):
        row = by[name]
        if row.platform is not None:
            extra = row.platform.num - row.simulated.num - (row.more_num or 0)
            if extra > tolerance(row.simulated.num, share, least):
                foreign.append(f"{extra} {name.split()[0]}")
    visits = by["visits refused/nobody home"]
    if visits.platform is not None:
        extra = visits.platform.den - visits_simulated
        if extra > tolerance(visits_simulated, share, least):
            foreign.append(f"{extra} visit attempts")
    if foreign:
        note = (
            "the period holds traffic this run did not make ("
            + ", ".join(foreign)
            + "): earlier runs, or events before the window on its first bureau day;"
            " only what is missing can be told"
        )
        for row in rows:
            if row.figure != "dispatch within 60 s" and not row.informational:
                row.allow_more()
        by["cases received"].notes.append(note)
    dispatch = by["dispatch within 60 s"]
    if all_time is not None:
        platform_cases, simulated_cases = all_time
        dispatch.notes.append(
            "from the /metrics histogram (le=60): all event time, not only the window"
        )
        if platform_cases > simulated_cases + tolerance(simulated_cases, share, least):
            dispatch.allow_more()
            dispatch.notes.append(
                f"the bureaus hold {platform_cases - simulated_cases} cases over all time"
                " that this run did not post: only what is missing can be told"
            )
    for row in rows:
        judge(row, share, least)
    return rows


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def render(
    rows: Sequence[Row], *, share: float = TOLERANCE_SHARE, least: int = TOLERANCE_MIN
) -> str:
    """The side-by-side table: figure, simulated, platform, difference, verdict; notes."""
    lines = [
        f"  {'figure':28} {'simulated':>22} {'platform':>22} {'difference':>11}  verdict",
    ]
    notes: dict[str, int] = {}  # each note once, numbered in order of first use
    for row in rows:
        s, p = row.simulated, row.platform
        if row.figure == "complaints per 1,000 cases":
            sim = f"{1000 * s.rate:.2f}" if s.rate is not None else "n/a"
            plat = f"{1000 * p.rate:.2f}" if p is not None and p.rate is not None else "n/a"
            diff = (
                f"{1000 * (p.rate - s.rate):+.2f}"
                if p is not None and p.rate is not None and s.rate is not None
                else ""
            )
        elif row.is_volume:
            sim, plat = str(s.num), "n/a" if p is None else str(p.num)
            diff = "" if p is None else f"{p.num - s.num:+d}"
        else:
            sim = f"{_pct(s.rate)} {s.num}/{s.den}"
            plat = "n/a" if p is None else f"{_pct(p.rate)} {p.num}/{p.den}"
            diff = (
                f"{100 * (p.rate - s.rate):+.1f} pp"
                if p is not None and p.rate is not None and s.rate is not None
                else ""
            )
        refs = [notes.setdefault(n, len(notes) + 1) for n in row.notes]
        mark = (" " + ",".join(f"[{i}]" for i in refs)) if refs else ""
        lines.append(f"  {row.figure:28} {sim:>22} {plat:>22} {diff:>11}  {row.verdict}{mark}")
        scale = 1000 if row.figure == "complaints per 1,000 cases" else 1
        if row.headline is not None and s.rate is not None:
            if abs(row.headline - scale * s.rate) > 5e-4 * scale:
                shown = f"{row.headline:.2f}" if scale > 1 else _pct(row.headline)
                lines.append(f"  {'':28} {'(headline ' + shown + ')':>22}")
    lines.append(
        f"  tolerance: {share:.0%} of the denominator, at least {least} items, beyond what the"
        " notes allow"
    )
    return "\n".join(lines + [f"    [{i}] {n}" for n, i in notes.items()])


# ---- reading the platform -----------------------------------------------------------------


def period(start: datetime, end: datetime) -> tuple[date, date]:
    """The bureau days (Beijing) the window touches."""
    last = end - timedelta(microseconds=1) if end > start else end
    return start.astimezone(BEIJING).date(), last.astimezone(BEIJING).date()


def _add(total: dict[str, Any], body: Mapping[str, Any]) -> None:
    """Sum two `/v1/figures` bodies: counts and numerator/denominator pairs (rates dropped)."""
    for key, value in body.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, dict):
            _add(total.setdefault(key, {}), value)


def summed(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for body in bodies:
        _add(total, body)
    return total


@dataclass
class Progress:
    caught_up: bool
    applied: int
    partitions: int
    waited: float
    message: str


Fetch = Callable[[], Awaitable[tuple[int, int]]]


async def wait_until_settled(
    fetch: Fetch,
    *,
    settle: float = 10.0,
    wait: float = 300.0,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Progress:
    """Poll (events applied, partitions reporting) until it has not changed for `settle`
    seconds, with at least one partition reporting; give up after `wait` seconds."""
    began = clock()
    last: tuple[int, int] | None = None
    since = began
    while True:
        now_value = await fetch()
        now = clock()
        if now_value != last:
            last, since = now_value, now
        applied, partitions = now_value
        if partitions and now - since >= settle:
            return Progress(
                True, applied, partitions, now - began,
                f"caught up: {applied} events applied, unchanged for {now - since:.0f} s",
            )  # fmt: skip
        if now - began >= wait:
            why = (
                "no metrics processor has reported (is the metrics worker running?)"
                if not partitions
                else f"events applied still changing ({applied} now)"
            )
            return Progress(
                False, applied, partitions, now - began,
                f"metrics did not catch up within {wait:.0f} s: {why}",
            )  # fmt: skip
        await sleep(poll)


def _headers(tokens: Any, bureau: str) -> dict[str, str]:
    from jingmin_sim.api import Actor

    return {"Authorization": f"Bearer {tokens.token(Actor('supervisor', SUPERVISOR, bureau))}"}


async def _figures(
    client: httpx.AsyncClient, tokens: Any, bureau: str, first: date, last: date
) -> dict[str, Any]:
    r = await client.get(
        "/v1/figures",
        params={"scope": bureau, "from": first.isoformat(), "to": last.isoformat()},
        headers=_headers(tokens, bureau),
    )
    if r.status_code != 200:
        raise RuntimeError(
            f"GET /v1/figures?scope={bureau} answered {r.status_code}: {r.text[:200]}"
        )
    body: dict[str, Any] = r.json()
    return body


def histogram_counts(text: str, bureaus: Sequence[str]) -> tuple[Count, int]:
    """(dispatches within 60 s / dispatches, cases received) of the bureaus, all event time,
    from the Prometheus text of `/metrics`."""
    from prometheus_client.parser import text_string_to_metric_families

    within = dispatched = received = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("bureau") not in bureaus:
                continue
            if sample.name == "jingmin_intake_dispatch_latency_seconds_bucket":
                if float(sample.labels.get("le", "nan")) == 60.0:
                    within += int(sample.value)
            elif sample.name == "jingmin_intake_dispatch_latency_seconds_count":
                dispatched += int(sample.value)
            elif sample.name == "jingmin_intake_cases_received_total":
                received += int(sample.value)
    return Count(within, dispatched), received


async def check_simulation(
    result: Any,
    clients: Mapping[str, httpx.AsyncClient],
    context: Any = None,
    *,
    settle: float = 10.0,
    wait: float = 300.0,
    poll: float = 1.0,
) -> dict[str, Any]:
    """The `figures` check (entry point group `jingmin.sim.checks`)."""
    client = clients.get("metrics")
    if client is None:
        return {"name": NAME, "status": "skipped", "detail": "no metrics URL"}
    try:
        health = await client.get("/healthz")
        if health.status_code != 200:
            raise RuntimeError(f"/healthz answered {health.status_code}")
    except (httpx.HTTPError, RuntimeError) as exc:
        return {"name": NAME, "status": "skipped", "detail": f"metrics not reachable ({exc})"}
    if context is None or context.tokens is None:
        return {
            "name": NAME,
            "status": "skipped",
            "detail": "no tokens (the simulator passes a CheckContext since this check exists)",
        }
    bureaus = list(context.bureaus)
    first, last = period(result.start, result.end)

    async def progress() -> tuple[int, int]:
        body = await _figures(client, context.tokens, bureaus[0], first, last)
        return int(body["events_applied"]), int(body["partitions_reporting"])

    state = await wait_until_settled(progress, settle=settle, wait=wait, poll=poll)
    bodies = [await _figures(client, context.tokens, b, first, last) for b in bureaus]
    platform = platform_counts(summed([b["figures"] for b in bodies]))
    metrics_text = (await client.get("/metrics")).text
    dispatch, all_time_cases = histogram_counts(metrics_text, bureaus)
    platform["dispatch within 60 s"] = dispatch
    tallies = result.tallies
    rows = compare(
        simulated_rows(tallies, result.figures()),
        platform,
        visits_simulated=sum(
            tallies.get(f"visits.{o}", 0) for o in ("completed", "nobody_home", "refused")
        ),
        all_time=(all_time_cases, tallies.get("cases", 0) + tallies.get("issues.raised", 0)),
    )
    failed = [r for r in rows if r.verdict == "FAIL"]
    head = (
        f"{sum(r.verdict in ('ok', 'explained') for r in rows)} figures agree,"
        f" {len(failed)} differ beyond what the definitions explain;"
        f" bureaus {','.join(bureaus)}, bureau days {first} to {last}; {state.message}"
    )
    status = "pass" if state.caught_up and not failed else "fail"
    return {
        "name": NAME,
        "status": status,
        "detail": head + "\n" + render(rows),
        "caught_up": state.caught_up,
        "period": {"from": first.isoformat(), "to": last.isoformat(), "bureaus": bureaus},
        "failures": [r.problem for r in failed],
        "rows": [
            {
                "figure": r.figure,
                "simulated": {"numerator": r.simulated.num, "denominator": r.simulated.den},
                "platform": None
                if r.platform is None
                else {"numerator": r.platform.num, "denominator": r.platform.den},
                "headline": r.headline,
                "verdict": r.verdict,
                "notes": r.notes,
            }
            for r in rows
        ],
    }
