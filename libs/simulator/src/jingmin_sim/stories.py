"""The stories: what happens to one case, callback, complaint, order, visit or event.

Each story plans its own steps from its random stream and the model, then posts them in
event-time order through the public APIs, as the officer, call taker or supervisor who would
do each one. Where another service's consumer creates the next thing (a callback after a
resolution, a complaint from a complaint case, a service-recovery order after a 不满意), a
follow-up story finds it through the owning service's API.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from jingmin_sim import model as m
from jingmin_sim import texts
from jingmin_sim.api import Actor, iso
from jingmin_sim.engine import Run, Start, Story, StoryStop, window_days
from jingmin_sim.geography import Bureau, Officer, Station
from jingmin_sim.people import (
    FramePerson,
    Resident,
    frame_index,
    pick_index,
    resident,
    survey_frame,
)

DISPATCH_CHANNELS = frozenset({"call_110", "call_122", "hotline"})
PHONE_CHANNELS = frozenset({"call_110", "call_122", "hotline"})
WRITTEN_CHANNELS = frozenset({"online", "social_media", "mailbox", "transfer_in"})
DESK_CHANNELS = frozenset({"window", "visit", "letter"})


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class CaseRef:
    """What follow-up stories need to know about an intake case (or a complaint)."""

    key: str
    case_id: str
    bureau: Bureau
    station: Station
    kind: str
    channel: str
    category: str | None
    experience: m.Experience
    resolved_at: datetime
    last_at: datetime  # the last step its own story planned (reopen must come after it)
    officer: Officer | None = None
    trigger: str = "case_resolved"
    extra: dict[str, Any] = field(default_factory=dict)


# ---- arrivals ---------------------------------------------------------------------------------


def _hours(run: Run) -> Iterator[tuple[datetime, date, int]]:
    for midnight in window_days(run.options.start, run.options.end):
        for hour in range(24):
            yield midnight + timedelta(hours=hour), midnight.date(), hour


def arrivals(run: Run) -> list[Start]:
    """Every story that starts by itself in the window, in time order.

    Counts are drawn per station, channel and calendar hour from a stream seeded by those
    alone: the same seed gives the same contacts in an hour whatever window is simulated.
    """
    o = run.options
    seed = o.seed
    starts: list[Start] = []

    def add(t: datetime, key: str, fn: Any) -> None:
        if o.start <= t <= o.end:
            starts.append(Start(t, key, fn))

    hours = list(_hours(run))
    for station in run.stations.values():
        bureau = run.bureaus[station.bureau]
        if "cases" in o.include:
            for channel, daily in m.CHANNEL_DAILY.items():
                for begin, day, hour in hours:
                    mean = (
                        daily
                        * station.size
                        * o.rate
                        * m.day_factor(channel, day)
                        * m.hour_factor(channel, day, hour)
                    )
                    if mean <= 0:
                        continue
                    rng = random.Random(f"{seed}:arrivals:{station.code}:{channel}:{day}:{hour}")
                    for i in range(m.poisson(rng, mean)):
                        t = begin + seconds(rng.uniform(0, 3600))
                        add(
                            t,
                            f"case/{station.code}/{day}T{hour:02d}/{channel}/{i}",
                            _bind(case_story, station, channel, t),
                        )
        for midnight in window_days(o.start, o.end):
            day = midnight.date()
            work = m.is_workday(day)
            rng = random.Random(f"{seed}:daily:{station.code}:{day}")
            if "visits" in o.include:
                mean = m.VISITS_PER_STATION_WORKDAY if work else m.VISITS_PER_STATION_OFFDAY
                for i in range(m.poisson(rng, mean * o.rate * station.size)):
                    planned = _visit_time(rng, midnight, station)
                    lead = seconds(rng.uniform(0.5, 3.0) * m.DAY)
                    if planned < o.start:
                        continue  # planned before the window: not part of this run
                    scheduled = max(planned - lead, o.start)
                    add(
                        scheduled,
                        f"visit/{station.code}/{day}/{i}",
                        _bind(visit_story, station, planned, scheduled),
                    )
            if "engagements" in o.include and work:
                for i in range(m.poisson(rng, m.ENGAGEMENTS_PER_STATION_WORKDAY * o.rate)):
                    t = midnight + timedelta(hours=rng.choice((9.5, 14.5, 15, 19)))
                    add(
                        t,
                        f"engagement/{station.code}/{day}/{i}",
                        _bind(engagement_story, station, t),
                    )
            if "complaints" in o.include:
                mean = m.DIRECT_COMPLAINTS_PER_BUREAU_DAY / 10 * station.size * o.rate
                mean *= math.exp(-0.8 * station.quality)  # poorly run stations draw more
                for i in range(m.poisson(rng, mean)):
                    t = midnight + seconds(rng.uniform(8.5, 17.5) * m.HOUR)
                    add(
                        t,
                        f"complaint/{station.code}/{day}/{i}",
                        _bind(direct_complaint_story, station, t),
                    )
    if "supervision" in o.include:
        for bureau in run.bureaus.values():
            for midnight in window_days(o.start, o.end):
                day = midnight.date()
                if not m.is_workday(day):
                    continue
                rng = random.Random(f"{seed}:inspections:{bureau.code}:{day}")
                for kind, weekly in m.INSPECTIONS_PER_BUREAU_WEEK.items():
                    per_day = weekly / 5 * o.rate * len(bureau.stations) / 10
                    for i in range(m.poisson(rng, per_day)):
                        t = midnight + seconds(rng.uniform(9, 16) * m.HOUR)
                        add(
                            t,
                            f"inspection/{bureau.code}/{day}/{kind}/{i}",
                            _bind(inspection_story, bureau, kind, t),
                        )
                if _third_working_day(day):
                    t = midnight + timedelta(hours=10)
                    add(
                        t,
                        f"inspection/{bureau.code}/{day}/monthly_sampling/0",
                        _bind(inspection_story, bureau, "monthly_sampling", t),
                    )
    starts.extend(survey_arrivals(run))
    starts.sort()
    return starts


def _bind(fn: Any, *args: Any) -> Any:
    async def story(s: Story) -> None:
        await fn(s, *args)

    return story


def _third_working_day(day: date) -> bool:
    if not m.is_workday(day):
        return False
    count, d = 0, day.replace(day=1)
    while d <= day:
        count += m.is_workday(d)
        d += timedelta(days=1)
    return count == 3


def _visit_time(rng: random.Random, midnight: datetime, station: Station) -> datetime:
    # Households are found at home in the evening, businesses in office hours.
    if station.area_type == "urban" and rng.random() < 0.35:
        hours = rng.uniform(18.5, 20.0)
    else:
        hours = rng.choice((rng.uniform(9, 11.5), rng.uniform(14.5, 17.5)))
    return midnight + seconds(hours * m.HOUR)


# ---- intake cases -----------------------------------------------------------------------------


def _hours_type(t: datetime) -> str:
    local = t.astimezone(m.TZ)
    if not m.is_workday(local.date()):
        return "holiday" if local.weekday() < 5 else "staggered"
    if local.hour >= 17 or local.hour == 12:
        return "extended"
    return "regular"


async def case_story(s: Story, station: Station, channel: str, t0: datetime) -> None:
    rng, run = s.rng, s.run
    bureau = run.bureaus[station.bureau]
    kind = m.choose(rng, m.KIND_MIX[channel])
    if channel == "call_122":
        category = "traffic_accident" if kind == "alarm" else "stranded"
        branch = "traffic"
    else:
        category = m.choose(rng, m.CATEGORIES[kind])
        branch = m.choose(rng, m.BRANCH[kind]) if kind in m.BRANCH else "other"
        if kind == "service":
            branch = m.SERVICE_CATEGORY_BRANCH.get(category, "household")
    person = resident(run.options.seed, station.code, pick_index(rng))
    anonymous = kind == "tip" and rng.random() < m.P_ANONYMOUS_TIP
    area = station.area_type if rng.random() < 0.9 else rng.choice(("urban", "suburban", "rural"))
    body: dict[str, Any] = {
        "bureau": bureau.code,
        "station": station.code,
        "channel": channel,
        "kind": kind,
        "area_type": area,
        "branch": branch,
        "category": category,
        "demand": texts.demand(rng, category),
    }
    if not anonymous:
        body["person"] = person.person(with_id=kind in ("service", "petition", "complaint"))
        body["party_category"] = person.party
        body["hoped_outcome"] = rng.choice(texts.HOPES)
    if kind == "service" and channel == "window":
        body["hours_type"] = _hours_type(t0)
    receiver = (
        s.as_clerk(station, s.officer(station, "window_clerk"))
        if channel in DESK_CHANNELS
        else s.as_call_taker(bureau)
    )
    accepted = await s.post("intake", "/v1/cases", {}, body, receiver, t0)
    case_id = accepted.body["case_id"]
    s.name(case_id, f"case:{s.key}")
    s.tally("cases")
    s.tally(f"cases.kind.{kind}")
    s.tally(f"cases.channel.{channel}")
    exp = m.Experience(
        kind=kind,
        area_type=area,
        party=person.party,
        station_quality=station.quality,
        temperament=person.temperament,
        victim=category in m.VICTIM_CATEGORIES,
    )
    case = CaseRef(
        key=s.key,
        case_id=case_id,
        bureau=bureau,
        station=station,
        kind=kind,
        channel=channel,
        category=category,
        experience=exp,
        resolved_at=t0,
        last_at=t0,
        trigger="petition_resolved" if kind == "petition" else "case_resolved",
        extra={"anonymous": anonymous, "person": person},
    )
    flow = _flow(kind, channel, category)
    await flow(s, case, t0, receiver)


def _flow(kind: str, channel: str, category: str) -> Any:
    if kind == "complaint":
        return _complaint_case
    if kind in ("alarm", "help") and channel in DISPATCH_CHANNELS:
        return _emergency
    if kind == "service":
        return _window_service if channel == "window" else _written
    if kind == "petition":
        return _petition
    if kind == "consultation" and channel in PHONE_CHANNELS:
        return _phone_consultation
    return _written


def _officers(s: Story, station: Station) -> list[Officer]:
    patrol = [o for o in station.officers if o.rank == "patrol_officer"]
    return s.rng.sample(patrol, k=min(len(patrol), s.rng.choice((1, 2, 2, 3))))


async def _emergency(s: Story, case: CaseRef, t0: datetime, taker: Actor) -> None:
    """110/122 alarm or help: answered, dispatched, on scene, resolved (or not police work)."""
    rng, station, ids = s.rng, case.station, {"case": case.case_id}
    t = t0 + seconds(m.lognormal(rng, *m.ANSWER_110))
    non_police = case.kind == "help" and rng.random() < m.P_NON_POLICE_HELP.get(
        case.category or "", 0.0
    )
    if not await s.at(t):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        ids,
        {"officer_id": taker.subject, "unit": case.bureau.code, "in_remit": not non_police},
        taker,
        t,
    )
    if case.kind == "alarm" and rng.random() < m.P_DUPLICATE:
        t += seconds(rng.uniform(10, 40))
        if await s.at(t):
            await s.post(
                "intake",
                "/v1/cases/{case}/rejection",
                ids,
                {"reason": "duplicate", "explanation": "同一警情已有他人报警，已合并处置"},
                taker,
                t,
            )
            s.tally("cases.rejected")
        return
    if non_police:
        # Told on the call itself (非警务求助 → 12345): a decision within the dispatch minute;
        # a slow one is a dispatch breach, as the policy counts it.
        t += seconds(m.lognormal(rng, *m.NON_POLICE_TRANSFER))
        if (t - t0).total_seconds() > 60:
            s.tally("deadlines.dispatch_breached_by_slow_transfer")
        informed = rng.random() < m.P_PERSON_INFORMED + 0.05 * station.quality
        target = {"utilities": "12345", "animal": "city_management"}.get(
            case.category or "", "12345"
        )
        if await s.at(t):
            await s.post(
                "intake",
                "/v1/cases/{case}/transfer",
                ids,
                {
                    "target_type": "external",
                    "target": target,
                    "explanation": "非警务求助，已告知向12345政务服务热线反映并转办"
                    if informed
                    else "已转相关部门",
                    "person_informed": informed,
                },
                taker,
                t,
            )
            s.tally("cases.transferred.external")
        return
    # Dispatch: slower when the desk is busy; a few calls wait much longer.
    median, sigma, tail = m.DISPATCH
    median *= 0.8 + 0.4 * m.busy(t0)
    dispatched = max(
        t + seconds(2),
        t0 + seconds(m.lognormal(rng, median, sigma, tail=tail, tail_factor=(3, 10))),
    )
    crew = _officers(s, station)
    lead = crew[0]
    case.officer = lead
    case.experience.attitude = lead.attitude
    case.experience.late_dispatch = (dispatched - t0).total_seconds() > 60
    if not await s.at(dispatched):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/dispatch",
        ids,
        {
            "unit": station.code,
            "officer_ids": [o.officer_id for o in crew],
            "reason": texts.demand(rng, case.category or "other"),
            "purpose": "到场核实处置，保护群众安全",
        },
        taker,
        dispatched,
    )
    s.tally("dispatch.late" if case.experience.late_dispatch else "dispatch.on_time")
    median, sigma, tail = m.ARRIVAL[case.experience.area_type]
    median *= math.exp(-0.15 * station.quality) * (1.2 if m.night(dispatched) else 1.0)
    arrived = dispatched + seconds(m.lognormal(rng, median, sigma, tail=tail))
    ratio = (arrived - dispatched).total_seconds() / m.ARRIVAL_TARGET[case.experience.area_type]
    case.experience.arrival_ratio = ratio
    officer_actor = s.as_officer(station, lead)
    if not await s.at(arrived):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/arrival",
        ids,
        {"officer_id": lead.officer_id},
        officer_actor,
        arrived,
    )
    s.tally("arrival.late" if ratio > 1 else "arrival.on_time")
    s.tally(f"arrival.{case.experience.area_type}.{'late' if ratio > 1 else 'on_time'}")
    on_scene = m.ON_SCENE[case.kind]
    done = arrived + seconds(m.lognormal(rng, *on_scene))
    if case.kind == "alarm" and rng.random() < m.P_FALSE_REPORT:
        if await s.at(done):
            await s.post(
                "intake",
                "/v1/cases/{case}/rejection",
                ids,
                {"reason": "false_report", "explanation": "经到场核实，无报警所述情况"},
                officer_actor,
                done,
            )
            s.tally("cases.rejected")
        return
    if rng.random() < m.P_CRIME_TRANSFER.get(case.category or "", 0.0):
        if await s.at(done):
            await s.post(
                "intake",
                "/v1/cases/{case}/transfer",
                ids,
                {
                    "target_type": "internal",
                    "target": f"{case.bureau.code}.criminal",
                    "explanation": "已受案，移交刑侦大队侦查，告知报警人案件查询方式",
                    "person_informed": True,
                },
                officer_actor,
                done,
            )
            s.tally("cases.transferred.internal")
        return
    await _resolve(s, case, done, officer_actor)


async def _resolve(s: Story, case: CaseRef, t: datetime, actor: Actor) -> None:
    """Resolution, the formal close, and the callback that follows (by visits' policy)."""
    if not await s.at(t):
        return
    ids = {"case": case.case_id}
    await s.post(
        "intake",
        "/v1/cases/{case}/resolution",
        ids,
        {"reply": texts.reply(s.rng, case.kind)},
        actor,
        t,
    )
    s.tally("cases.resolved")
    if "service_tally" in case.extra:
        s.tally(case.extra["service_tally"])  # 一次办结率 counts resolved services
    case.resolved_at = case.last_at = t
    closed = None
    if s.rng.random() < m.P_CLOSED:
        closed = t + seconds(m.lognormal(s.rng, *m.CLOSE_AFTER))
        case.last_at = closed
    if "callbacks" in s.run.options.include:
        s.spawn(f"{s.key}/callback", t, _bind(callback_story, case))
        if case.kind == "alarm" and (case.category or "") in m.FOLLOWED_UP:
            # Its own story and random stream: the case's own draws stay as they were.
            s.spawn(f"{s.key}/follow-up", case.last_at, _bind(follow_up_story, case))
    if closed is not None and await s.at(closed):
        await s.post("intake", "/v1/cases/{case}/close", ids, {}, actor, closed)


async def follow_up_story(s: Story, case: CaseRef) -> None:
    """After a resolved alarm: a classification (crime victim, preventable) and an
    enforcement decision, each followed by the callback visits' policy opens for it."""
    rng, category, drill = s.rng, case.category or "", s.run.options.drill
    victim = rng.random() < m.P_CRIME_VICTIM.get(category, 0.0)
    preventable = rng.random() < m.P_PREVENTABLE.get(category, 0.0)
    decision = (
        m.choose(rng, m.ENFORCEMENT_DECISIONS)
        if rng.random() < m.P_ENFORCEMENT.get(category, 0.0)
        else None
    )
    officer = s.as_officer(case.station, s.officer(case.station))
    t = case.last_at
    if victim or preventable:
        t = s.run.soon(t, rng) if drill else t + seconds(m.lognormal(rng, *m.CLASSIFY_AFTER))
        if not await s.at(t, soon=drill):
            return
        body = {"crime_victim": victim, "preventable": preventable, "category": category}
        ids = {"case": case.case_id}
        await s.post("intake", "/v1/cases/{case}/classification", ids, body, officer, t)
        case.last_at = max(case.last_at, t)  # a reopen later comes after it
        s.tally("cases.classified")
        for trigger, wanted in (("crime_victim", victim), ("preventable_case", preventable)):
            if wanted:
                _follow_with_callback(s, case, trigger, t)
    if decision is not None:
        t = s.run.soon(t, rng) if drill else t + seconds(m.lognormal(rng, *m.ENFORCE_AFTER))
        if not await s.at(t, soon=drill):
            return
        await s.post(
            "intake",
            "/v1/cases/{case}/enforcement-decision",
            {"case": case.case_id},
            {"decision": decision},
            s.as_supervisor(case.bureau),
            t,
        )
        case.last_at = max(case.last_at, t)
        s.tally(f"cases.enforcement.{decision}")
        _follow_with_callback(s, case, "enforcement_decision", t)


def _follow_with_callback(s: Story, case: CaseRef, trigger: str, t: datetime) -> None:
    s.tally(f"callbacks.expected.{trigger}")
    follow = replace(case, trigger=trigger, resolved_at=t, last_at=t)
    s.spawn(f"{s.key}/{trigger}", t, _bind(callback_story, follow))


async def _phone_consultation(s: Story, case: CaseRef, t0: datetime, taker: Actor) -> None:
    t = t0 + seconds(m.lognormal(s.rng, *m.ANSWER_110))
    if not await s.at(t):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        {"case": case.case_id},
        {"officer_id": taker.subject, "unit": case.bureau.code, "in_remit": True},
        taker,
        t,
    )
    case.experience.attitude = s.rng.gauss(0, 0.3)
    await _resolve(s, case, t + seconds(m.lognormal(s.rng, *m.PHONE_REPLY)), taker)


async def _written(s: Story, case: CaseRef, t0: datetime, taker: Actor) -> None:
    """Online, social media, mailbox, 12345 transfers, deputies: picked up, then answered."""
    rng, station, ids = s.rng, case.station, {"case": case.case_id}
    median, sigma = m.WRITTEN_PICKUP
    if m.night(t0):
        median *= 3  # a thinner night shift reads the online platform
    if case.channel in ("deputy", "monitor"):
        median = m.DAY
    picked = t0 + seconds(m.lognormal(rng, median, sigma))
    handler = s.officer(station, "community_officer")
    case.officer = handler
    case.experience.attitude = handler.attitude
    if not await s.at(picked):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        ids,
        {"officer_id": handler.officer_id, "unit": station.code, "in_remit": True},
        s.as_officer(station, handler),
        picked,
    )
    actor = s.as_officer(station, handler)
    median, sigma = m.WRITTEN_REPLY.get(case.kind, m.WRITTEN_REPLY["consultation"])
    reply_at = m.next_office_time(picked + seconds(m.lognormal(rng, median, sigma)), rng)
    due = m.HOUR * 2 if case.kind == "help" else 7 * m.DAY
    case.experience.late_reply = (reply_at - t0).total_seconds() > due
    if case.kind == "tip" and rng.random() < m.P_TIP_TRANSFER:
        if await s.at(reply_at):
            target = (
                f"{case.bureau.code}.{'cyber' if case.category == 'fraud_clue' else 'criminal'}"
            )
            await s.post(
                "intake",
                "/v1/cases/{case}/transfer",
                ids,
                {
                    "target_type": "internal",
                    "target": target,
                    "explanation": "线索已移交相关警种核查",
                    "person_informed": True,
                },
                actor,
                reply_at,
            )
            s.tally("cases.transferred.internal")
        return
    await _resolve(s, case, reply_at, actor)


async def _window_service(s: Story, case: CaseRef, t0: datetime, clerk: Actor) -> None:
    """A service at the window: materials missing means another trip (一次办结率)."""
    rng, station, ids = s.rng, case.station, {"case": case.case_id}
    officer = next(o for o in station.officers if o.officer_id == clerk.subject)
    case.officer = officer
    case.experience.attitude = officer.attitude
    t = t0 + seconds(m.lognormal(rng, *m.WINDOW_WAIT))
    visits = 0
    p_missing = m.P_MISSING_FIRST * math.exp(-0.8 * station.quality)
    # Some certificates are issued days later against a committed date (服务承诺), usually
    # in time; they are posted or collected without another visit being needed.
    later = rng.random() < m.P_CERTIFICATE_LATER
    while True:
        visits += 1
        missing = rng.random() < (p_missing if visits == 1 else m.P_MISSING_AGAIN) and visits < 4
        body: dict[str, Any] = {"hours_type": _hours_type(t)}
        if missing:
            body["missing_materials"] = rng.sample(m.MISSING_MATERIALS, k=rng.choice((1, 1, 2)))
            back = m.next_office_time(
                t + timedelta(days=rng.choice((1, 1, 2, 3, 5))), rng, end=time(16, 30)
            )
            body["appointment_at"] = iso(back)
        elif later:
            committed = m.add_working_days(t, rng.choice((3, 5, 7)))
            body["committed_due_at"] = iso(committed)
        if not await s.at(t):
            return
        await s.post("intake", "/v1/cases/{case}/service-visits", ids, body, clerk, t)
        if not missing:
            break
        # Most come back at the appointment; some a few days later.
        t = back + seconds(rng.uniform(-600, 1800) if rng.random() < 0.85 else 2 * m.DAY)
        t = m.next_office_time(t, rng)
    case.experience.extra_visits = visits - 1
    case.extra["service_tally"] = "service.one_visit" if visits == 1 else "service.repeat_visits"
    done = t + seconds(m.lognormal(rng, *m.WINDOW_SERVE))
    if later:
        ready = m.next_office_time(m.add_working_days(t, rng.choice((2, 3, 4, 5, 6, 8))), rng)
        case.experience.late_reply = ready > committed
        done = max(done, ready)
    await _resolve(s, case, done, clerk)


async def _petition(s: Story, case: CaseRef, t0: datetime, clerk: Actor) -> None:
    """信访: accepted within 15 days, concluded within 60, or escalated to the government."""
    rng, station, ids = s.rng, case.station, {"case": case.case_id}
    case.experience.attitude = rng.gauss(0, 0.3)
    accepted = m.next_office_time(t0 + seconds(m.lognormal(rng, *m.PETITION_ACCEPT)), rng)
    sup = s.as_supervisor(case.bureau)
    if not await s.at(accepted):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        ids,
        {"officer_id": sup.subject, "unit": case.bureau.code, "in_remit": True},
        sup,
        accepted,
    )
    if "supervision" in s.run.options.include and rng.random() < m.P_TRACK_PETITION:
        issued = m.next_office_time(accepted + timedelta(days=1), rng)
        s.spawn(f"{s.key}/tracking", issued, _bind(tracking_story, case, issued))
    concluded = m.next_office_time(accepted + seconds(m.lognormal(rng, *m.PETITION_CONCLUDE)), rng)
    case.experience.late_reply = (concluded - accepted).total_seconds() > 60 * m.DAY
    escalate = rng.random() < m.P_PETITION_ESCALATE.get(
        case.category or "", m.P_PETITION_ESCALATE_OTHER
    )
    officer = s.officer(station, "station_leader")
    if escalate:
        if await s.at(concluded):
            await s.post(
                "intake",
                "/v1/cases/{case}/escalation",
                ids,
                {"reason": "涉及多部门职责，报请当地政府协调处理"},
                sup,
                concluded,
            )
            s.tally("cases.escalated")
        return
    await _resolve(s, case, concluded, s.as_officer(station, officer))


async def _complaint_case(s: Story, case: CaseRef, t0: datetime, taker: Actor) -> None:
    """A complaint about police conduct reaching intake: handed to 督察 (complaints service)."""
    rng, ids = s.rng, {"case": case.case_id}
    s.tally("complaints.filed.intake")
    handed = t0 + seconds(m.lognormal(rng, *m.COMPLAINT_HANDOVER))
    sup = s.as_supervisor(case.bureau)
    if not await s.at(handed):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        ids,
        {"officer_id": sup.subject, "unit": case.bureau.code, "in_remit": True},
        sup,
        handed,
    )
    moved = handed + seconds(rng.uniform(60, 900))
    if not await s.at(moved):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/transfer",
        ids,
        {
            "target_type": "internal",
            "target": f"{case.bureau.code}.supervision",
            "explanation": "投诉已转督察部门受理，将在规定时限内联系您",
            "person_informed": True,
        },
        sup,
        moved,
    )
    if "complaints" in s.run.options.include:
        # The complaints service opens the complaint under the case's own id.
        s.spawn(f"{s.key}/complaint", t0, _bind(found_complaint_story, case, t0))


# ---- complaints and supervision ------------------------------------------------------------------


async def found_complaint_story(s: Story, case: CaseRef, received: datetime) -> None:
    sup = s.as_supervisor(case.bureau)
    found = await s.discover(
        "complaints", "/v1/complaints/{complaint}", {"complaint": case.case_id}, sup
    )
    if not found:
        s.tally("complaints.not_found")
        return
    await complaint_work(s, case, case.case_id, received, case.category or "other", None)


async def direct_complaint_story(s: Story, station: Station, t0: datetime) -> None:
    """12389 supervision hotline, letters and visits to 督察: filed in the complaints API."""
    rng, run = s.rng, s.run
    bureau = run.bureaus[station.bureau]
    category = m.choose(rng, m.CATEGORIES["complaint"])
    person = resident(run.options.seed, station.code, pick_index(rng))
    officer = s.officer(station) if rng.random() < 0.5 else None
    body: dict[str, Any] = {
        "bureau": bureau.code,
        "subject_unit": station.code,
        "channel": rng.choices(("hotline", "letter", "visit", "online"), (60, 15, 15, 10))[0],
        "category": category,
        "complainant": person.person(with_id=rng.random() < 0.5),
        "account": texts.demand(rng, category),
        "hoped_outcome": rng.choice(texts.HOPES),
    }
    if officer is not None:
        body["subject_officer"] = officer.officer_id
    sup = s.as_supervisor(bureau)
    accepted = await s.post("complaints", "/v1/complaints", {}, body, sup, t0)
    complaint_id = accepted.body["complaint_id"]
    s.name(complaint_id, f"complaint:{s.key}")
    s.tally("complaints.filed.direct")
    exp = m.Experience(
        kind="complaint",
        area_type=station.area_type,
        party=person.party,
        station_quality=station.quality,
        temperament=person.temperament,
    )
    case = CaseRef(
        s.key,
        complaint_id,
        bureau,
        station,
        "complaint",
        body["channel"],
        category,
        exp,
        t0,
        t0,
        officer=officer,
    )
    await complaint_work(s, case, complaint_id, t0, category, officer)


async def complaint_work(
    s: Story,
    case: CaseRef,
    complaint_id: str,
    received: datetime,
    category: str,
    officer: Officer | None,
) -> None:
    """受理, investigation, conclusion, reply, close; remedy and accountability as found."""
    rng, bureau, station = s.rng, case.bureau, case.station
    ids = {"complaint": complaint_id}
    sup = s.as_supervisor(bureau)
    base = "/v1/complaints/{complaint}/"
    if rng.random() < m.P_WITHDRAWN_EARLY:
        t = received + seconds(m.lognormal(rng, m.DAY, 0.8))
        if await s.at(t):
            await s.post("complaints", base + "conclude", ids, {"outcome": "withdrawn"}, sup, t)
            s.tally("complaints.concluded.withdrawn")
            t += seconds(m.lognormal(rng, *m.COMPLAINT_CLOSE))
            if await s.at(t):
                await s.post("complaints", base + "close", ids, {}, sup, t)
        return
    t = m.next_office_time(received + seconds(m.lognormal(rng, *m.COMPLAINT_ACK)), rng)
    if not await s.at(t):
        return
    await s.post("complaints", base + "acknowledge", ids, {}, sup, t)
    s.tally("complaints.acknowledged")
    t += seconds(m.lognormal(rng, *m.COMPLAINT_ASSIGN))
    investigator = rng.choice([x for x in bureau.supervisors if x != sup.subject])
    if not await s.at(t):
        return
    await s.post(
        "complaints",
        base + "assign",
        ids,
        {"investigator_id": investigator, "investigator_unit": bureau.code},
        sup,
        t,
    )
    acknowledged = t
    concluded = m.next_office_time(t + seconds(m.lognormal(rng, *m.COMPLAINT_CONCLUDE)), rng)
    if rng.random() < m.P_EXTEND:
        extend_at = m.next_office_time(acknowledged + timedelta(days=45), rng)
        concluded = m.next_office_time(acknowledged + timedelta(days=rng.uniform(62, 84)), rng)
        if not await s.at(extend_at):
            return
        await s.post(
            "complaints",
            base + "extend",
            ids,
            {
                "reason": rng.choice(("complex", "witnesses", "multi_agency")),
                "new_due_date": (acknowledged + timedelta(days=85))
                .astimezone(m.TZ)
                .date()
                .isoformat(),
            },
            sup,
            extend_at,
        )
    weights: dict[str, float] = dict(m.OUTCOMES)
    weights["substantiated"] *= math.exp(-0.8 * station.quality)
    outcome = m.choose(rng, weights)
    actions = {
        "substantiated": ["apology", "criticism_education"],
        "partially_substantiated": ["explanation", "correction"],
        "unsubstantiated": ["explanation"],
        "withdrawn": [],
    }[outcome]
    if outcome == "substantiated" and category in ("misconduct", "corruption"):
        actions.append("disciplinary")
    if not await s.at(concluded):
        return
    await s.post(
        "complaints",
        base + "conclude",
        ids,
        {"outcome": outcome, "actions": actions, "findings": "经调查核实，已形成处理意见"},
        sup,
        concluded,
    )
    s.tally(f"complaints.concluded.{outcome}")
    case.experience.complaint_outcome = outcome
    follow = replace(
        case,
        case_id=complaint_id,
        trigger="complaint_concluded",
        resolved_at=concluded,
        last_at=concluded,
    )
    if outcome != "withdrawn" and "callbacks" in s.run.options.include:
        s.spawn(f"{s.key}/concluded-callback", concluded, _bind(callback_story, follow))
    if (
        outcome == "substantiated"
        and category in ("attitude", "misconduct", "corruption", "discipline")
        and "supervision" in s.run.options.include
        and rng.random() < m.P_ACCOUNTABILITY
    ):
        s.spawn(
            f"{s.key}/accountability",
            concluded,
            _bind(accountability_story, case, complaint_id, officer, concluded),
        )
    t = concluded + seconds(m.lognormal(rng, *m.COMPLAINT_REPLY))
    if not await s.at(t):
        return
    await s.post(
        "complaints",
        base + "reply",
        ids,
        {
            "mode": rng.choice(("phone", "letter", "in_person", "sms")),
            "reply": "您反映的问题已调查核实，处理结果如下",
        },
        sup,
        t,
    )
    if outcome in ("substantiated", "partially_substantiated") and rng.random() < m.P_REMEDY:
        t += seconds(rng.uniform(1, 5) * m.DAY)
        if not await s.at(t):
            return
        await s.post(
            "complaints",
            base + "remedy",
            ids,
            {"remedy": rng.choice(("service_delivered", "procedure_changed", "other"))},
            sup,
            t,
        )
    t += seconds(m.lognormal(rng, *m.COMPLAINT_CLOSE))
    if not await s.at(t):
        return
    await s.post("complaints", base + "close", ids, {}, sup, t)
    if rng.random() < m.P_DISPUTE:
        t += seconds(rng.uniform(2, 10) * m.DAY)
        if await s.at(t):
            await s.post(
                "complaints",
                base + "reopen",
                ids,
                {"reason": "disputed", "note": "投诉人对处理结果有异议"},
                sup,
                t,
            )
            s.tally("complaints.reopened")


async def accountability_story(
    s: Story, case: CaseRef, complaint_id: str, officer: Officer | None, concluded: datetime
) -> None:
    t = m.next_office_time(concluded + timedelta(days=s.rng.uniform(1, 5)), s.rng)
    if not await s.at(t):
        return
    body: dict[str, Any] = {
        "bureau": case.bureau.code,
        "unit": case.station.code,
        "kind": s.rng.choice(("admonishment_talk", "warning_education", "administrative_fault")),
        "basis_type": "complaint",
        "basis_id": complaint_id,
    }
    if officer is not None:
        body["officer_id"] = officer.officer_id
    await s.post(
        "complaints", "/v1/supervision/accountability", {}, body, s.as_supervisor(case.bureau), t
    )
    s.tally("supervision.accountability")


async def tracking_story(s: Story, case: CaseRef, issued: datetime) -> None:
    """跟踪督办 of a petition: the station reports back, the supervisor checks it."""
    sup = s.as_supervisor(case.bureau)
    accepted = await s.post(
        "complaints",
        "/v1/supervision/orders",
        {},
        {
            "bureau": case.bureau.code,
            "owner_unit": case.station.code,
            "order_type": "tracking",
            "item_type": "case",
            "item_id": case.case_id,
            "instructions": "请跟踪办理并按期报告结果",
        },
        sup,
        issued,
    )
    order_id = accepted.body["order_id"]
    s.name(order_id, f"order:{s.key}")
    s.tally("supervision.orders.tracking")
    await _report_and_close(s, case.station, case.bureau, order_id, issued, m.TRACKING_REPORT)


async def _report_and_close(
    s: Story,
    station: Station,
    bureau: Bureau,
    order_id: str,
    issued: datetime,
    report_days: tuple[float, float],
    reporter: Actor | None = None,
) -> datetime | None:
    rng, ids = s.rng, {"order": order_id}
    median, sigma = report_days
    drill = s.run.options.drill
    if drill:
        reported = s.run.soon(issued, rng)
    else:
        reported = m.next_office_time(
            m.add_working_days(issued, m.lognormal(rng, median, sigma * 0.5)), rng
        )
    # The owner unit reports: the station's leader, or the bureau's staff for an order
    # owned a level up.
    reporter = reporter or s.as_officer(station, s.officer(station, "station_leader"))
    if not await s.at(reported, soon=drill):
        return None
    await s.post(
        "complaints",
        "/v1/supervision/orders/{order}/report",
        ids,
        {"report": "已按要求整改，向当事人作出解释并加强教育"},
        reporter,
        reported,
    )
    s.tally("supervision.orders.reported")
    checked = (
        s.run.soon(reported, rng)
        if drill
        else m.next_office_time(reported + seconds(m.lognormal(rng, m.DAY, 0.6)), rng)
    )
    if await s.at(checked, soon=drill):
        await s.post(
            "complaints",
            "/v1/supervision/orders/{order}/close",
            ids,
            {"verdict": m.choose(rng, m.RECOVERY_VERDICT)},
            s.as_supervisor(bureau),
            checked,
        )
    return reported


async def recovery_story(s: Story, case: CaseRef, callback_id: str, answered: datetime) -> None:
    """Service recovery: the order visits' 不满意 opened; report back; the follow-up call."""
    sup = s.as_supervisor(case.bureau)

    def mine(body: Any) -> Any:
        return next((o for o in body.get("items", []) if o.get("callback_id") == callback_id), None)

    order = await s.discover(
        "complaints",
        "/v1/supervision/orders",
        {},
        sup,
        found=mine,
        params={"item_id": case.case_id, "order_type": "service_recovery"},
    )
    if not order:
        s.tally("supervision.recovery.not_found")
        return
    order_id = order["order_id"]
    s.name(order_id, f"order:{s.key}")
    s.tally("supervision.orders.service_recovery")
    reporter = sup if order.get("level") != "station" else None
    reported = await _report_and_close(
        s, case.station, case.bureau, order_id, answered, m.RECOVERY_REPORT, reporter
    )
    if reported is not None and "callbacks" in s.run.options.include:
        exp = replace(case.experience, recovery=True)
        follow = replace(
            case, trigger="service_recovery", experience=exp, resolved_at=reported, last_at=reported
        )
        s.spawn(f"{s.key}/follow-up", reported, _bind(callback_story, follow))


async def callback_complaint_story(
    s: Story, case: CaseRef, callback_id: str, category: str, answered: datetime
) -> None:
    """A 我要投诉 in a callback answer: complaints opened it; 督察 works it like any other."""
    sup = s.as_supervisor(case.bureau)

    def mine(body: Any) -> Any:
        return next((c for c in body.get("items", []) if c.get("callback_id") == callback_id), None)

    found = await s.discover(
        "complaints",
        "/v1/complaints",
        {},
        sup,
        found=mine,
        params={"station": case.station.code, "category": category, "limit": "500"},
    )
    if not found:
        s.tally("complaints.not_found")
        return
    complaint_id = found["complaint_id"]
    s.name(complaint_id, f"complaint:{s.key}")
    s.tally("complaints.filed.callback")
    await complaint_work(s, case, complaint_id, answered, category, case.officer)


async def inspection_story(s: Story, bureau: Bureau, kind: str, t: datetime) -> None:
    """督察 inspections: online, on site, or the monthly case-file sampling (月抽查)."""
    rng = s.rng
    station = rng.choice(bureau.stations)
    sup = s.as_supervisor(bureau)
    body: dict[str, Any] = {"bureau": bureau.code, "unit": station.code, "kind": kind}
    if kind == "monthly_sampling":
        previous = (t.astimezone(m.TZ).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        body.update(period=previous, sample_size=rng.choice((20, 30, 50)), unit=bureau.code)
    accepted = await s.post("complaints", "/v1/supervision/inspections", {}, body, sup, t)
    inspection_id = accepted.body["inspection_id"]
    s.name(inspection_id, f"inspection:{s.key}")
    s.tally(f"supervision.inspections.{kind}")
    ids = {"inspection": inspection_id}
    violations = 0
    findings = rng.choice((0, 1, 1, 2, 3)) + (2 if kind == "monthly_sampling" else 0)
    for _ in range(findings):
        t += seconds(rng.uniform(10, 60) * m.MINUTE)
        severity = m.choose(rng, m.SEVERITY)
        violations += severity == "violation"
        if not await s.at(t):
            return
        await s.post(
            "complaints",
            "/v1/supervision/inspections/{inspection}/findings",
            ids,
            {"code": m.choose(rng, m.FINDINGS), "severity": severity},
            sup,
            t,
        )
    t += seconds(rng.uniform(0.5, 3) * m.HOUR)
    if not await s.at(t):
        return
    await s.post(
        "complaints",
        "/v1/supervision/inspections/{inspection}/complete",
        ids,
        {"summary": "督察检查完毕，问题已反馈被检单位"},
        sup,
        t,
    )
    if violations:
        # 限期整改 for what was found wrong.
        issued = t + seconds(rng.uniform(1, 4) * m.HOUR)
        if not await s.at(issued):
            return
        order = await s.post(
            "complaints",
            "/v1/supervision/orders",
            {},
            {
                "bureau": bureau.code,
                "owner_unit": station.code,
                "order_type": "rectification",
                "item_type": "inspection",
                "item_id": inspection_id,
                "instructions": "限期整改并报告整改情况",
            },
            sup,
            issued,
        )
        order_id = order.body["order_id"]
        s.name(order_id, f"order:{s.key}")
        s.tally("supervision.orders.rectification")
        await _report_and_close(s, station, bureau, order_id, issued, (8.0, 0.6))


# ---- callbacks -----------------------------------------------------------------------------------


async def callback_story(s: Story, case: CaseRef) -> None:
    """回访: the officer's calls (or the SMS link) and the answer they get."""
    rng, station = s.rng, case.station
    callback_id = f"cb-{case.case_id}-{case.trigger}"
    reader = s.as_officer(station, s.officer(station, "community_officer"))
    detail = await s.discover(
        "visits",
        "/v1/callbacks/{callback}",
        {"callback": callback_id},
        reader,
        found=lambda b: b if b.get("callback") else None,
    )
    if not detail:
        s.tally("callbacks.not_found")
        return
    found = detail["callback"]
    # What visits already recorded (an SMS link sent, an expiry) happened before any call
    # we make: our event times never go behind it.
    history = [parse(e["occurred_at"]) for e in detail.get("history", []) if e.get("occurred_at")]
    last = max(history, default=case.resolved_at)
    s.tally(f"callbacks.{case.trigger}")
    status = found["status"]
    if status == "suppressed":
        s.tally(f"callbacks.suppressed.{found.get('suppression_reason') or 'other'}")
        return
    if status != "scheduled":
        s.tally(f"callbacks.already_{status}")
        return
    drill = s.run.options.drill
    satisfaction = case.experience.satisfaction(rng)
    if drill and case.trigger != "service_recovery":
        # A drill's answers: all three, 不满意 often enough to open recovery orders.
        # (The follow-up after a recovery is answered as the model says.)
        satisfaction = m.choose(rng, m.DRILL_ANSWERS)
    security = case.experience.security(rng)
    sink = s.run.sms_sink
    if drill:
        await _drill_callback(s, case, found, callback_id, satisfaction, security, last)
        return
    phone_after = 1.0
    if found.get("mode") == "sms":
        if sink is not None and rng.random() < m.P_SMS_ANSWER and not _quiet(s):
            if await _answer_by_link(s, case, callback_id, satisfaction, security):
                return
        # Without the dev SMS sink the answer cannot come through the link: the station
        # calls instead (as it does for those who ignore the SMS).
        phone_after = 0.8 if sink is None else m.P_PHONE_AFTER_SMS
    if rng.random() > phone_after:
        s.tally("callbacks.left_unanswered")
        return
    if rng.random() < m.P_NEVER_CALLED * math.exp(-station.quality):
        s.tally("callbacks.never_called")
        return
    caller = s.officer(station, "community_officer")
    actor = s.as_officer(station, caller)
    first_try = case.resolved_at + seconds(m.lognormal(rng, *m.CALLBACK_FIRST_TRY))
    t = m.next_office_time(max(first_try, last + seconds(60)), rng, any_day=True)
    ids = {"callback": callback_id}
    base = "/v1/callbacks/{callback}/"
    if rng.random() < m.P_ASSIGNED:
        assigned = max(last, t - seconds(rng.uniform(600, 7200)))
        if not await s.at(assigned):
            s.tally("callbacks.cut_by_window")
            return
        r = await s.post(
            "visits",
            base + "assign",
            ids,
            {"officer_id": caller.officer_id},
            s.as_supervisor(case.bureau),
            assigned,
            expect=(409, 422),
        )
        if not r.ok:
            s.tally(f"callbacks.closed_before_call.{r.status}")
            return
    for _attempt in range(m.MAX_ATTEMPTS):
        if not await s.at(t):
            s.tally("callbacks.cut_by_window")
            return
        roll = rng.random()
        outcome = (
            "declined"
            if roll < m.P_DECLINED
            else "reached"
            if roll < m.P_REACHED + 0.04 * station.quality
            else "unreachable"
        )
        r = await s.post(
            "visits", base + "attempts", ids, {"outcome": outcome}, actor, t, expect=(409, 422)
        )
        if not r.ok:
            # The expiry loop, or an SMS answer, closed it first; or the SMS link went out
            # after the time we meant to call (its event is later than ours).
            s.tally(f"callbacks.closed_before_call.{r.status}")
            return
        s.tally(f"callbacks.attempt.{outcome}")
        if outcome == "declined":
            return
        if outcome == "reached":
            answered = t + seconds(rng.uniform(120, 420))
            await _answer(s, case, callback_id, satisfaction, security, answered, actor)
            return
        t = m.next_office_time(t + seconds(m.lognormal(rng, *m.CALLBACK_RETRY)), rng, any_day=True)
    s.tally("callbacks.unreached")


async def _drill_callback(
    s: Story,
    case: CaseRef,
    found: dict[str, Any],
    callback_id: str,
    satisfaction: str,
    security: str,
    last: datetime,
) -> None:
    """A drill's callback: answered on the SMS page when one was sent (the dev sink), else
    by phone at the first call, a minute or two after what came before it."""
    if found.get("mode") == "sms" and s.run.sms_sink is not None:
        if await _answer_by_link(s, case, callback_id, satisfaction, security):
            return
        # No link within the wait (quiet hours, no contact): the station phones instead.
    caller = s.officer(case.station, "community_officer")
    actor = s.as_officer(case.station, caller)
    t = s.run.soon(max(last, case.resolved_at), s.rng)
    r = await s.post(
        "visits",
        "/v1/callbacks/{callback}/attempts",
        {"callback": callback_id},
        {"outcome": "reached"},
        actor,
        t,
        expect=(409, 422),
    )
    if not r.ok:
        s.tally(f"callbacks.closed_before_call.{r.status}")
        return
    s.tally("callbacks.attempt.reached")
    answered = s.run.soon(t, s.rng)
    await _answer(s, case, callback_id, satisfaction, security, answered, actor)


def _quiet(s: Story) -> bool:
    """Visits' SMS loop sends no link in the quiet hours (20:00-08:00, the default policy):
    none can be answered then, so nobody waits for one."""
    from jingmin_sim.api import utcnow

    hour = utcnow().astimezone(m.TZ).hour
    quiet = hour >= 20 or hour < 8
    if quiet:
        s.tally("callbacks.sms_quiet_hours")
    return quiet


async def _answer(
    s: Story,
    case: CaseRef,
    callback_id: str,
    satisfaction: str,
    security: str,
    t: datetime,
    actor: Actor,
) -> None:
    rng = s.rng
    if not await s.at(t, soon=s.run.options.drill):
        return
    body: dict[str, Any] = {"satisfaction": satisfaction, "security": security}
    if rng.random() < m.P_COMMENT:
        body["comment"] = texts.comment(rng, satisfaction)
    wants = _wants_complaint(s, case, satisfaction)
    if wants:
        body["wants_complaint"] = True
        body["complaint_category"] = case.experience.complaint_category()
    r = await s.post(
        "visits",
        "/v1/callbacks/{callback}/answer",
        {"callback": callback_id},
        body,
        actor,
        t,
        expect=(409,),
    )
    if not r.ok:
        s.tally("callbacks.closed_before_call.409")
        return
    _tally_answer(s, case, satisfaction, security, "officer")
    _after_answer(s, case, callback_id, satisfaction, wants, t)


def _wants_complaint(s: Story, case: CaseRef, satisfaction: str) -> bool:
    if satisfaction != "dissatisfied" or "complaints" not in s.run.options.include:
        return False
    p = m.P_WANTS_COMPLAINT * (2 if case.experience.attitude < -0.5 else 1)
    return s.rng.random() < p


def _tally_answer(s: Story, case: CaseRef, satisfaction: str, security: str, via: str) -> None:
    s.tally(f"callbacks.answered.{case.trigger}")
    s.tally(f"answers.{case.trigger}.satisfaction.{satisfaction}")
    s.tally(f"answers.{case.trigger}.security.{security}")
    s.tally(f"answers.via.{via}")
    if case.trigger == "case_resolved":
        s.tally(f"answers.party.{case.experience.party}.{satisfaction}")


def _after_answer(
    s: Story, case: CaseRef, callback_id: str, satisfaction: str, wants: bool, t: datetime
) -> None:
    include = s.run.options.include
    if satisfaction == "dissatisfied" and "supervision" in include and "complaints" in include:
        s.spawn(f"{s.key}/recovery", t, _bind(recovery_story, case, callback_id, t))
    if wants:
        category = case.experience.complaint_category()
        s.spawn(
            f"{s.key}/complaint", t, _bind(callback_complaint_story, case, callback_id, category, t)
        )
    if (
        satisfaction == "dissatisfied"
        and case.trigger == "case_resolved"
        and s.rng.random() < m.P_REOPEN_AFTER_DISSATISFIED
    ):
        s.spawn(f"{s.key}/reopen", t, _bind(reopen_story, case, t))


async def reopen_story(s: Story, case: CaseRef, answered: datetime) -> None:
    """A 不满意 that shows the matter was not settled: the station reopens and resolves it."""
    rng, station = s.rng, case.station
    leader = s.officer(station, "station_leader")
    actor = s.as_officer(station, leader)
    t = m.next_office_time(max(answered, case.last_at) + timedelta(days=1), rng)
    if not await s.at(t):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/reopen",
        {"case": case.case_id},
        {"reason": "callback_unsatisfied", "note": "回访时群众表示不满意，重新处理"},
        actor,
        t,
    )
    s.tally("cases.reopened")
    done = m.next_office_time(t + seconds(m.lognormal(rng, 2 * m.DAY, 0.6)), rng)
    if await s.at(done):
        await s.post(
            "intake",
            "/v1/cases/{case}/resolution",
            {"case": case.case_id},
            {"reply": "已重新调查处理，并向当事人说明"},
            actor,
            done,
        )


async def _answer_by_link(
    s: Story, case: CaseRef, callback_id: str, satisfaction: str, security: str
) -> bool:
    """The citizen opens the SMS link (read from the dev sink) and answers on the page."""
    sink = s.run.sms_sink
    assert sink is not None
    token = await sink.wait_for_link(callback_id, s.run.options.discover_timeout)
    if token is None:
        s.tally("callbacks.sms_not_sent")
        return False
    form = {"satisfaction": satisfaction, "security": security}
    if s.rng.random() < m.P_COMMENT:
        form["comment"] = texts.comment(s.rng, satisfaction)
    wants = _wants_complaint(s, case, satisfaction)
    if wants:
        form["complaint"] = "yes"
    citizen = Actor("officer", "citizen", case.station.code)  # the page ignores the token
    r = await s.form("visits", "/s/{token}", {"token": token}, form, citizen)
    if not r.ok:
        s.tally(f"callbacks.sms_page.{r.status}")
        return False
    _tally_answer(s, case, satisfaction, security, "sms")
    from jingmin_sim.api import utcnow

    # The page records the answer at the time it is posted.
    answered = min(utcnow(), s.run.horizon(soon=True))
    _after_answer(s, case, callback_id, satisfaction, wants, answered)
    return True


# ---- visits and engagement ---------------------------------------------------------------------


def _issue(rng: random.Random, area_type: str) -> dict[str, Any]:
    kind = m.choose(rng, m.ISSUE_KINDS)
    category = m.choose(rng, m.CATEGORIES[kind])
    return {
        "kind": kind,
        "category": category,
        "area_type": area_type,
        "summary": rng.choice(texts.ISSUES),
    }


async def visit_story(s: Story, station: Station, planned: datetime, scheduled: datetime) -> None:
    """走访: planned, then done, nobody home or refused; issues raised become field cases."""
    rng, run = s.rng, s.run
    bureau = run.bureaus[station.bureau]
    programme = m.choose(rng, m.PROGRAMMES)
    if programme == "leadership":
        officer = s.officer(station, "station_leader")
        rank = "station_leader"
    else:
        officer = s.officer(station, "community_officer")
        rank = officer.rank
    mode = m.choose(rng, m.VISIT_MODES)
    target = "vulnerable_household" if programme == "vulnerable" else m.choose(rng, m.TARGETS)
    body: dict[str, Any] = {
        "bureau": bureau.code,
        "station": station.code,
        "beat": station.beat(rng.randrange(6)),
        "programme": programme,
        "mode": mode,
        "target_type": target,
        "area_type": station.area_type,
        "officer_id": officer.officer_id,
        "officer_rank": rank,
        "planned_for": iso(planned),
    }
    person: Resident | None = None
    if target in ("household", "vulnerable_household") and rng.random() < 0.6:
        person = resident(run.options.seed, station.code, pick_index(rng))
        body["person"] = person.person()
    actor = s.as_officer(station, officer)
    accepted = await s.post("visits", "/v1/visits", {}, body, actor, scheduled)
    visit_id = accepted.body["visit_id"]
    s.name(visit_id, f"visit:{s.key}")
    s.tally(f"visits.programme.{programme}")
    ids = {"visit": visit_id}
    # Officers turn up a little early or late; never before the visit was planned.
    t = max(planned + seconds(rng.uniform(-900, 3600)), scheduled + seconds(600))
    for round_ in (1, 2):
        if not await s.at(t):
            return
        in_person = mode == "in_person"
        p_home = m.P_NOBODY_HOME[station.area_type] * (0.5 if round_ == 2 else 1.0)
        roll = rng.random()
        if (in_person and roll < p_home) or (not in_person and roll < 0.08):
            outcome = "nobody_home"
        elif in_person and roll < p_home + m.P_REFUSED[station.area_type]:
            outcome = "refused"
        else:
            outcome = "completed"
        s.tally(f"visits.{outcome}")
        if outcome != "completed":
            await s.post("visits", "/v1/visits/{visit}/fail", ids, {"outcome": outcome}, actor, t)
            if round_ == 2 or outcome == "refused" or rng.random() > m.P_RESCHEDULE:
                return
            again = m.next_office_time(t + timedelta(days=rng.uniform(1, 3)), rng)
            moved = t + seconds(rng.uniform(60, 600))
            if not await s.at(moved):
                return  # the window ends first (an event time beyond it would be refused)
            await s.post(
                "visits",
                "/v1/visits/{visit}/reschedule",
                ids,
                {"planned_for": iso(again), "reason": "nobody_home"},
                actor,
                moved,
            )
            t = again
            continue
        feedback_score = 1.4 + station.quality + 0.5 * officer.attitude + rng.gauss(0, 1)
        feedback = (
            "supportive"
            if feedback_score > 0.6
            else "critical"
            if feedback_score < -0.6
            else "indifferent"
        )
        complete: dict[str, Any] = {"feedback": feedback}
        if rng.random() < 0.3:
            complete["opinions"] = rng.choice(texts.OPINIONS)
        issues = []
        if rng.random() < m.P_ISSUE:
            issues = [
                _issue(rng, station.area_type) for _ in range(1 if rng.random() < 0.85 else 2)
            ]
            complete["issues"] = issues
        await s.post("visits", "/v1/visits/{visit}/complete", ids, complete, actor, t)
        if issues:
            s.tally("issues.raised", len(issues))
            if "cases" in run.options.include:
                s.spawn(
                    f"{s.key}/issues",
                    t,
                    _bind(issues_story, "visits", visit_id, station, officer, t),
                )
        return


async def engagement_story(s: Story, station: Station, t: datetime) -> None:
    """警民恳谈会, 送法进校园…: participants, opinions, and the issues they raise."""
    rng, run = s.rng, s.run
    bureau = run.bureaus[station.bureau]
    kind = m.choose(rng, m.ENGAGEMENT_TYPES)
    low, high = m.PARTICIPANTS[kind]
    leader = s.officer(station, "station_leader")
    others = rng.sample([o.officer_id for o in station.officers if o != leader], k=3)
    opinions = []
    issues = 0
    for _ in range(rng.randint(0, 5)):
        opinion: dict[str, Any] = {
            "feedback": rng.choices(("supportive", "critical", "indifferent"), (65, 15, 20))[0],
            "text": rng.choice(texts.OPINIONS),
        }
        if rng.random() < 0.4:
            opinion["person"] = resident(run.options.seed, station.code, pick_index(rng)).person()
        if rng.random() < 0.2:
            opinion["issue"] = _issue(rng, station.area_type)
            issues += 1
        opinions.append(opinion)
    body = {
        "bureau": bureau.code,
        "station": station.code,
        "beat": station.beat(rng.randrange(6)),
        "type": kind,
        "venue": m.VENUES[kind] if station.area_type != "rural" or kind != "forum" else "village",
        "area_type": station.area_type,
        "organiser": leader.officer_id,
        "officer_ids": others,
        "participants": rng.randint(low, high),
        "opinions": opinions,
    }
    actor = s.as_officer(station, leader)
    accepted = await s.post("visits", "/v1/engagements", {}, body, actor, t)
    engagement_id = accepted.body["engagement_id"]
    s.name(engagement_id, f"engagement:{s.key}")
    s.tally(f"engagements.{kind}")
    if issues:
        s.tally("issues.raised", issues)
        if "cases" in run.options.include:
            s.spawn(
                f"{s.key}/issues",
                t,
                _bind(issues_story, "engagements", engagement_id, station, leader, t),
            )


async def issues_story(
    s: Story, source: str, source_id: str, station: Station, officer: Officer, raised: datetime
) -> None:
    """The field cases intake opened for a visit's issues: picked up and answered."""
    reader = s.as_officer(station, officer)
    noun = source[:-1]

    def listed(body: Any) -> Any:
        return body.get("issues") or None

    issues = await s.discover(
        "visits", f"/v1/{source}/{{item}}", {"item": source_id}, reader, found=listed
    )
    if not issues:
        s.tally("issues.not_found")
        return
    for n, issue in enumerate(sorted(issues, key=lambda i: i["issue_id"])):
        s.name(issue["case_id"], f"case:{s.key}#{n}")
        s.spawn(
            f"{s.key}/{noun}-case/{n}",
            raised,
            _bind(field_case_story, station, officer, issue, raised),
        )


async def field_case_story(
    s: Story, station: Station, officer: Officer, issue: dict[str, Any], raised: datetime
) -> None:
    rng, run = s.rng, s.run
    bureau = run.bureaus[station.bureau]
    case_id = issue["case_id"]
    actor = s.as_officer(station, officer)
    found = await s.discover("intake", "/v1/cases/{case}", {"case": case_id}, actor)
    if not found:
        s.tally("issues.case_not_found")
        return
    s.tally("cases.field")
    ids = {"case": case_id}
    t = raised + seconds(m.lognormal(rng, m.HOUR, 0.8))
    if not await s.at(t):
        return
    await s.post(
        "intake",
        "/v1/cases/{case}/first-contact",
        ids,
        {"officer_id": officer.officer_id, "unit": station.code, "in_remit": True},
        actor,
        t,
    )
    exp = m.Experience(
        kind=issue["kind"],
        area_type=station.area_type,
        station_quality=station.quality,
        attitude=officer.attitude,
    )
    case = CaseRef(
        s.key,
        case_id,
        bureau,
        station,
        issue["kind"],
        "field",
        issue.get("category"),
        exp,
        t,
        t,
        officer=officer,
    )
    if issue["kind"] == "petition":
        case.trigger = "petition_resolved"
    done = m.next_office_time(t + seconds(m.lognormal(rng, *m.FIELD_RESOLVE)), rng)
    await _resolve(s, case, done, actor)


__all__ = ["arrivals"]


# ---- the resident survey (民意调查) ------------------------------------------------------------

SURVEY_WAVES = "/v1/survey-waves"
SURVEY_WAVE = "/v1/survey-waves/{wave}"
SURVEY_UNIT = "/v1/survey-waves/{wave}/units/{unit}"


def survey_arrivals(run: Run) -> list[Start]:
    """A wave per bureau at the start of a window long enough to do fieldwork in."""
    o = run.options
    if "surveys" not in o.include:
        return []
    if not o.drill and (o.end - o.start) < timedelta(days=m.SURVEY_MIN_DAYS):
        return []
    starts = []
    for bureau in run.bureaus.values():
        key = f"survey/{bureau.code}/{o.start.astimezone(m.TZ):%Y-%m-%d}"
        rng = random.Random(f"{o.seed}:{key}:defined")
        t = o.start if o.drill else m.next_office_time(o.start, rng, any_day=True)
        if t <= o.end:
            starts.append(Start(t, key, _bind(survey_wave_story, bureau, t)))
    return starts


def _draw_seed(seed: str, station: str) -> int:
    """The seed a station's draw records: from the run's, so the same run draws the same."""
    return (
        int.from_bytes(hashlib.sha256(f"{seed}:survey-draw:{station}".encode()).digest()[:8]) >> 1
    )


def _frame_csv(people: tuple[FramePerson, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(people[0].row()), lineterminator="\n")
    writer.writeheader()
    for person in people:
        writer.writerow(person.row())
    return out.getvalue().encode()


async def survey_wave_story(s: Story, bureau: Bureau, t0: datetime) -> None:
    """The bureau's wave: defined over the window, a frame per station, the draws; then
    each sampled unit's fieldwork is a story of its own."""
    o = s.run.options
    organiser = s.as_supervisor(bureau)
    first, last = o.start.astimezone(m.TZ).date(), o.end.astimezone(m.TZ).date()
    days = (o.end - o.start) / timedelta(days=1)
    precision = m.survey_precision(m.SURVEY_UNITS_PER_STATION_DAY * o.rate * days)
    r = await s.post(
        "visits",
        SURVEY_WAVES,
        {},
        {
            "bureau": bureau.code,
            "title": f"{bureau.name}{first:%Y年%m月}群众安全感和满意度调查",
            "period_start": first.isoformat(),
            "period_end": last.isoformat(),
            "precision": precision,
            "expected_response_rate": m.SURVEY_EXPECTED_RESPONSE,
            "modes": ["phone", "in_person"],
        },
        organiser,
        t0,
    )
    wave_id = r.body["wave_id"]
    s.name(wave_id, s.key)
    s.tally("survey.waves")
    ids = {"wave": wave_id}
    # Frames and draws are stamped when they are recorded (the API takes no event time
    # for them), so they are posted without one.
    for station in bureau.stations:
        size = round(m.SURVEY_FRAME_PER_STATION * station.size)
        people = survey_frame(o.seed, station.code, size, _place(station))
        for part, begin in enumerate(range(0, len(people), m.SURVEY_FRAME_PART), start=1):
            chunk = people[begin : begin + m.SURVEY_FRAME_PART]
            await s.upload(
                "visits",
                SURVEY_WAVE + "/frames/{station}",
                {**ids, "station": station.code},
                "text/csv",
                _frame_csv(chunk),
                organiser,
                f"?part={part}",
            )
        s.tally("survey.frame_units", len(people))
        r = await s.post(
            "visits",
            SURVEY_WAVE + "/draws",
            ids,
            {"station": station.code, "seed": _draw_seed(o.seed, station.code)},
            organiser,
        )
        sample = await s.get(
            "visits", SURVEY_WAVE + "/sample", ids, organiser, {"station": station.code}
        )
        if not sample.ok:
            raise StoryStop(f"sample of {station.code}: {sample.status}")
        units = sample.body["items"]
        s.tally("survey.units", len(units))
        span = (o.end - t0).total_seconds() * m.SURVEY_FIRST_CALLS
        # The draw's order is the seed's and the frame's: the same units, same names.
        for i, unit in enumerate(units):
            key = f"survey/{station.code}/unit/{i}"
            s.name(unit["unit_id"], key)
            if o.drill and i >= m.SURVEY_DRILL_UNITS:
                continue
            t = t0 + seconds(s.rng.uniform(0, span))
            t = t if o.drill else _survey_call_time(t, s.rng)
            s.spawn(key, t, _bind(survey_unit_story, station, wave_id, unit["unit_id"], t))


def _place(station: Station) -> str:
    """The frame's invented addresses are in the station's own community."""
    return station.unit_name.removesuffix("派出所") + "社区"


def _in_call_hours(t: datetime) -> bool:
    """Outside the default quiet hours (20:00-08:00 Beijing), when phones may ring."""
    return 8 <= t.astimezone(m.TZ).hour < 20


def _survey_call_time(t: datetime, rng: random.Random) -> datetime:
    begin, end = m.SURVEY_CALL_HOURS
    return m.next_office_time(t, rng, start=begin, end=end, any_day=True)


async def survey_unit_story(
    s: Story, station: Station, wave_id: str, unit_id: str, first: datetime
) -> None:
    """A community officer works one sampled unit: the number first (an audited read),
    then calls at different times of day, and a visit to the home if the phone fails."""
    rng = s.rng
    officer = s.officer(station, "community_officer")
    actor = s.as_officer(station, officer)
    ids = {"wave": wave_id, "unit": unit_id}
    contact = await s.get("visits", SURVEY_UNIT + "/contact", ids, actor, expect=(403, 404))
    if not contact.ok:
        s.tally(f"survey.no_contact_read.{contact.status}")  # opted out: never contacted
        return
    index = frame_index(contact.body.get("phone"))
    size = round(m.SURVEY_FRAME_PER_STATION * station.size)
    people = survey_frame(s.run.options.seed, station.code, size, _place(station))
    if index is None or index >= len(people):
        s.tally("survey.unknown_person")
        return
    person = people[index]
    respondent = m.Respondent(
        area_type=station.area_type,
        age_band=person.age_band,
        residence=person.residence,
        station_quality=station.quality,
        temperament=person.temperament,
    )
    t = first
    modes = ["phone"] * m.SURVEY_PHONE_TRIES
    if rng.random() < m.SURVEY_P_IN_PERSON:
        modes.append("in_person")
    for n, mode in enumerate(modes):
        if n and s.run.options.drill:
            t += seconds(rng.uniform(*m.SURVEY_DRILL_RETRY))
        elif n:
            t = _survey_call_time(t + seconds(m.lognormal(rng, *m.SURVEY_RETRY)), rng)
        if not await s.at(t):
            s.tally("survey.cut_by_window")
            return
        if s.run.options.drill and not _in_call_hours(t):
            mode = "in_person"
        reached = (
            respondent.contact(rng)
            if mode == "phone"
            else rng.random() < m.SURVEY_P_IN_PERSON_CONTACT
        )
        outcome = respondent.reached(rng) if reached else "non_contact"
        body: dict[str, Any] = {"mode": mode, "outcome": outcome}
        if outcome == "completed":
            body["answers"] = {
                "security": respondent.security(rng),
                "satisfaction": respondent.satisfaction(rng),
                "change": respondent.change(rng),
                "problem": respondent.problem(rng),
            }
            if rng.random() < m.SURVEY_P_COMMENT:
                body["comment"] = texts.comment(rng, body["answers"]["satisfaction"])
        elif outcome == "partial":
            # A break-off after the first question.
            body["answers"] = {"security": respondent.security(rng)}
        await s.post("visits", SURVEY_UNIT + "/attempts", ids, body, actor, t)
        s.tally(f"survey.attempts.{outcome}")
        s.tally(f"survey.mode.{mode}")
        for item, answer in body.get("answers", {}).items():
            if item in ("security", "satisfaction"):
                s.tally(f"survey.answers.{item}.{answer}")
        if outcome != "non_contact":
            # A completed, partial (a break-off), refused or ineligible unit is done with.
            s.tally(f"survey.{outcome}")
            if outcome == "completed":
                s.tally(f"survey.residence.{person.residence}.completed")
            return
    s.tally("survey.never_reached")
