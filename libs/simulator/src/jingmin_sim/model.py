"""The workload model: how much, when, what kind, how fast, and how people answer.

Every figure here is a parameter, documented in libs/simulator/README.md. Sources: the
deadlines and targets of DOMAIN.md §5 (which the figures are measured against), published
shapes of 110 traffic (a night trough at 03:00-06:00, a late-morning rise and an evening
peak, busier Friday and Saturday nights), Zhejiang's 最多跑一次 window reform (most
services done in one visit), and the satisfaction levels Chinese bureaus report (满意率
in the mid-90s, a strict 满意 share well below that). The seeds give no numbers
(DOMAIN.md), so where practice is silent the value is a stated assumption.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

# ---- volume -----------------------------------------------------------------------------

# Mean contacts per station per day, at --rate 1 and an average-sized station. A county
# bureau with 10 stations then takes ~90 110 calls with a police matter a day (有效警情),
# ~110 window services on a working day and a few hundred contacts in all.
CHANNEL_DAILY: dict[str, float] = {
    "call_110": 9.0,
    "call_122": 1.2,
    "window": 16.0,
    "online": 3.5,
    "social_media": 0.6,
    "hotline": 0.5,
    "letter": 0.15,
    "visit": 0.35,
    "mailbox": 0.2,
    "transfer_in": 1.5,
    "deputy": 0.02,
    "monitor": 0.04,
}

# Relative volume by local hour (0-23); normalised per channel.
_ROUND_CLOCK_110 = (3.2, 2.6, 2.0, 1.6, 1.4, 1.6, 2.3, 3.4, 4.6, 5.2, 5.5, 5.3,
                    4.8, 4.6, 4.9, 5.0, 5.1, 5.2, 5.4, 5.9, 6.0, 5.8, 5.0, 4.0)  # fmt: skip
_TRAFFIC_122 = (1.2, 0.8, 0.6, 0.5, 0.5, 0.8, 2.0, 5.5, 6.5, 4.5, 4.0, 4.2,
                4.0, 3.8, 4.0, 4.4, 5.2, 6.5, 6.0, 4.2, 3.2, 2.6, 2.0, 1.6)  # fmt: skip
# Window hours 08:30-12:00 and 14:00-17:30, with a staffed lunch slot and an extended hour.
_OFFICE = (0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1.0, 1.0, 0.7,
           0.15, 0.4, 0.9, 1.0, 0.9, 0.35, 0.1, 0, 0, 0, 0, 0)  # fmt: skip
_WRITTEN = (1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3.0, 3.0, 2.7,
            2.3, 2.6, 2.8, 2.8, 2.6, 2.5, 2.7, 3.1, 3.3, 3.1, 2.5, 1.7)  # fmt: skip
_DAYTIME = (0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.0, 2.0, 1.7,
            1.2, 1.5, 1.9, 2.0, 1.8, 1.4, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2)  # fmt: skip
HOURLY: dict[str, tuple[float, ...]] = {
    "call_110": _ROUND_CLOCK_110,
    "call_122": _TRAFFIC_122,
    "window": _OFFICE,
    "online": _WRITTEN,
    "social_media": _WRITTEN,
    "hotline": _DAYTIME,
    "letter": _OFFICE,
    "visit": _OFFICE,
    "mailbox": _WRITTEN,
    "transfer_in": _OFFICE,
    "deputy": _OFFICE,
    "monitor": _OFFICE,
}
# Channels that follow office days (closed on Sundays and public holidays; a reduced
# Saturday morning under 错时延时服务 for the window).
OFFICE_CHANNELS = frozenset({"window", "letter", "visit", "transfer_in", "deputy", "monitor"})


def is_workday(day: date) -> bool:
    """Chinese working day (public holidays and make-up Saturdays honoured)."""
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(day))
    except (NotImplementedError, ImportError):
        return day.weekday() < 5


def day_factor(channel: str, day: date) -> float:
    """Volume of a channel on a day relative to an ordinary working day."""
    work = is_workday(day)
    if channel in OFFICE_CHANNELS:
        if work:
            return 1.0
        # Saturday (non-holiday) staggered-hours service at the window; otherwise closed.
        if channel == "window" and day.weekday() == 5:
            return 0.3
        return 0.0
    if channel in ("call_110", "call_122"):
        return 1.1 if not work else 1.0  # more leisure, more incidents and accidents
    return 0.8 if not work else 1.0


def hour_factor(channel: str, day: date, hour: int) -> float:
    """Share of the day's volume in this hour, with the weekend night shift."""
    weights = HOURLY[channel]
    share = weights[hour] / sum(weights)
    if channel == "call_110":
        # Friday and Saturday nights: bars, night markets, drink-driving checks.
        weekday = day.weekday()
        if (weekday in (4, 5) and hour >= 21) or (weekday in (5, 6) and hour <= 2):
            share *= 1.3
    return share


# ---- what people come with ---------------------------------------------------------------

KIND_MIX: dict[str, dict[str, float]] = {
    "call_110": {"alarm": 46, "help": 40, "consultation": 10, "tip": 3, "complaint": 0.15},
    "call_122": {"alarm": 85, "help": 13, "consultation": 2},
    "window": {"service": 93, "consultation": 6.5, "opinion": 0.4, "complaint": 0.05},
    "online": {"consultation": 45, "service": 22, "opinion": 14, "tip": 7, "help": 6,
               "petition": 2, "complaint": 0.5},
    "social_media": {"opinion": 35, "consultation": 33, "help": 15, "tip": 12, "complaint": 0.7},
    "hotline": {"tip": 62, "consultation": 20, "opinion": 8, "help": 4, "complaint": 2},
    "letter": {"petition": 70, "opinion": 14, "tip": 8, "complaint": 3},
    "visit": {"petition": 60, "consultation": 20, "opinion": 10, "complaint": 3},
    "mailbox": {"opinion": 50, "tip": 20, "consultation": 20, "complaint": 3},
    "transfer_in": {"help": 45, "consultation": 30, "opinion": 12, "petition": 8, "tip": 3,
                    "complaint": 0.7},
    "deputy": {"opinion": 100},
    "monitor": {"opinion": 75, "complaint": 10},
}  # fmt: skip

# Issue categories by kind (codes are free `Code`s in intake, used for top issues). The
# categories visits suppresses callbacks for (domestic violence, sexual offences, juveniles,
# deaths) appear at their real, small shares.
CATEGORIES: dict[str, dict[str, float]] = {
    "alarm": {"theft": 18, "fraud": 12, "fight": 11, "dispute": 20, "traffic_accident": 14,
              "noise": 8, "domestic_violence": 4, "missing_person": 3, "robbery": 1.5,
              "harassment": 4, "drunk": 3, "sexual_offence": 0.5, "juvenile": 0.8,
              "death_or_serious_injury": 0.4},
    "help": {"locked_out": 18, "lost_item": 20, "elderly_lost": 8, "medical_help": 7,
             "animal": 9, "utilities": 20, "stranded": 10, "mental_health": 3},
    "consultation": {"household_registration": 22, "id_card": 18, "exit_entry": 15,
                     "traffic_license": 15, "legal": 12, "residence_permit": 10,
                     "case_progress": 8},
    "service": {"household_registration": 25, "id_card": 30, "residence_permit": 15,
                "exit_entry_permit": 15, "no_crime_certificate": 8,
                "vehicle_registration": 4, "driving_license": 3},
    "petition": {"case_handling": 45, "compensation": 20, "land_dispute": 15,
                 "law_enforcement": 15, "household_registration": 5},
    "opinion": {"patrol": 25, "traffic_order": 25, "service_hours": 15,
                "public_security": 25, "station_environment": 10},
    "tip": {"gambling": 30, "drugs": 10, "prostitution": 8, "fraud_clue": 30,
            "illegal_business": 18, "fugitive": 4},
    "complaint": {"attitude": 30, "inaction": 22, "misconduct": 8, "unfair_enforcement": 8,
                  "corruption": 3, "service_delay": 18, "discipline": 6, "other": 5},
}  # fmt: skip

BRANCH: dict[str, dict[str, float]] = {
    "alarm": {"public_order": 60, "criminal": 25, "patrol": 15},
    "help": {"patrol": 55, "public_order": 45},
    "service": {"household": 70, "exit_entry": 20, "traffic": 10},
    "consultation": {"household": 45, "exit_entry": 20, "traffic": 20, "public_order": 15},
    "tip": {"criminal": 45, "cyber": 25, "public_order": 30},
}
MISSING_MATERIALS = ("household_register", "photo", "proof_of_residence",
                     "marriage_certificate", "employer_letter", "guardian_consent")  # fmt: skip
SERVICE_CATEGORY_BRANCH = {
    "exit_entry_permit": "exit_entry",
    "vehicle_registration": "traffic",
    "driving_license": "traffic",
}
PARTIES = ("local", "non_local", "vulnerable")


def choose(rng: random.Random, table: Mapping[str, float]) -> str:
    keys = list(table)
    return rng.choices(keys, weights=[table[k] for k in keys])[0]


def poisson(rng: random.Random, mean: float) -> int:
    """Poisson draw: Knuth's method for small means, a rounded normal for large ones."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def lognormal(
    rng: random.Random,
    median: float,
    sigma: float,
    *,
    tail: float = 0.0,
    tail_factor: tuple[float, float] = (2.0, 4.0),
) -> float:
    """A duration with a long right tail; `tail` is the share of extra-slow outliers."""
    value = median * math.exp(rng.gauss(0.0, sigma))
    if tail and rng.random() < tail:
        value *= rng.uniform(*tail_factor)
    return value


# ---- timeliness -------------------------------------------------------------------------

# Median seconds and spread (sigma of the log) of each interval, before station effects.
ANSWER_110 = (6.0, 0.5)
DISPATCH = (28.0, 0.55, 0.03)  # median, sigma, share of very slow dispatches (busy desk)
ARRIVAL: dict[str, tuple[float, float, float]] = {
    # against targets of 5, 10 and 20 minutes (DOMAIN.md §5)
    "urban": (165.0, 0.45, 0.04),
    "suburban": (330.0, 0.45, 0.04),
    "rural": (660.0, 0.50, 0.05),
}
ARRIVAL_TARGET = {"urban": 300.0, "suburban": 600.0, "rural": 1200.0}
ON_SCENE = {"alarm": (40 * MINUTE, 0.7), "help": (25 * MINUTE, 0.7)}
CLOSE_AFTER = (3 * HOUR, 1.0)
WRITTEN_PICKUP = (35 * MINUTE, 1.0)  # online message accepted (target 2 h)
WRITTEN_REPLY = {
    "consultation": (20 * HOUR, 1.0),
    "opinion": (3 * DAY, 0.8),
    "help": (6 * HOUR, 1.0),
    "tip": (2 * DAY, 0.9),
    "service": (1.5 * DAY, 0.7),
}
PHONE_REPLY = (4 * MINUTE, 0.6)  # a consultation answered on the phone
PETITION_ACCEPT = (4 * DAY, 0.7)  # target 15 days
PETITION_CONCLUDE = (22 * DAY, 0.5)  # target 60 days from acceptance
WINDOW_WAIT = (12 * MINUTE, 0.6)
WINDOW_SERVE = (15 * MINUTE, 0.5)
P_MISSING_FIRST = 0.15  # materials missing at the first window visit (最多跑一次)
P_MISSING_AGAIN = 0.20
P_CERTIFICATE_LATER = 0.4  # issued days later against a committed date (服务承诺)
NON_POLICE_TRANSFER = (30.0, 0.4)  # seconds from answer to the transfer, on the same call
P_NON_POLICE_HELP = {"utilities": 1.0, "animal": 0.5, "stranded": 0.15, "medical_help": 0.3}
P_PERSON_INFORMED = 0.92
P_CRIME_TRANSFER = {"fraud": 0.6, "robbery": 0.5, "theft": 0.25}
P_FALSE_REPORT = 0.015
P_DUPLICATE = 0.01
P_PETITION_ESCALATE = {"land_dispute": 0.8}
P_PETITION_ESCALATE_OTHER = 0.03
P_TIP_TRANSFER = 0.55
P_ANONYMOUS_TIP = 0.4
P_CLOSED = 0.9  # resolved cases a station also closes formally within the day

# What follows some resolved alarms (DOMAIN.md §3.2): an enforcement decision on a 治安 case
# (执法回访 follows), a classification as a crime with a victim (刑事被侵害人回访告知) or as a
# preventable case (可防性案件回访, prevention advice). By category; the sensitive ones are
# classified too, and visits records their callbacks as suppressed.
P_ENFORCEMENT = {"fight": 0.45, "harassment": 0.3, "drunk": 0.2, "noise": 0.1, "dispute": 0.05}
ENFORCEMENT_DECISIONS = {
    "administrative_penalty": 70, "administrative_compulsion": 10, "no_penalty": 20,
}  # fmt: skip
P_CRIME_VICTIM = {"theft": 0.5, "fraud": 0.7, "robbery": 0.9, "fight": 0.15,
                  "domestic_violence": 0.3, "sexual_offence": 0.8}  # fmt: skip
P_PREVENTABLE = {"theft": 0.6, "fraud": 0.8}
CLASSIFY_AFTER = (6 * HOUR, 0.8)  # after the case's own last step
ENFORCE_AFTER = (20 * HOUR, 0.8)  # 当场 or within days (治安 cases)
FOLLOWED_UP = frozenset({*P_ENFORCEMENT, *P_CRIME_VICTIM, *P_PREVENTABLE})


def night(t: datetime) -> bool:
    return t.astimezone(TZ).hour < 7 or t.astimezone(TZ).hour >= 22


def busy(t: datetime) -> float:
    """How loaded the command centre is at `t`: 0 (03:00) to 1 (evening peak)."""
    weights = _ROUND_CLOCK_110
    return weights[t.astimezone(TZ).hour] / max(weights)


def next_office_time(t: datetime, rng: random.Random, *, start: time = time(8, 30),
                     end: time = time(19, 30), any_day: bool = False) -> datetime:  # fmt: skip
    """`t` if within working hours on a working day, else a moment early next office day.

    Officers answer letters and report back in office hours; callbacks are made every day
    but never in the quiet hours (DOMAIN.md §3.2: no calls 20:00-08:00), hence `any_day`.
    """
    local = t.astimezone(TZ)
    if (any_day or is_workday(local.date())) and start <= local.time() < end:
        return t
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    while not (any_day or is_workday(day)):
        day += timedelta(days=1)
    begin = datetime.combine(day, start, tzinfo=TZ)
    return begin + timedelta(seconds=rng.uniform(0, 2.5 * HOUR))


def add_working_days(t: datetime, days: float) -> datetime:
    local = t.astimezone(TZ)
    whole = int(days)
    day = local.date()
    while whole > 0:
        day += timedelta(days=1)
        if is_workday(day):
            whole -= 1
    out = datetime.combine(day, local.time(), tzinfo=TZ)
    return out + timedelta(days=days - int(days))


# ---- answers ------------------------------------------------------------------------------


@dataclass
class Experience:
    """What a person went through; the callback answer is drawn from it."""

    kind: str
    area_type: str
    party: str = "local"
    station_quality: float = 0.0
    attitude: float = 0.0  # the handling officer's
    temperament: float = 0.0  # the person's own
    late_dispatch: bool = False
    arrival_ratio: float = 0.0  # arrival time / target (0: no arrival)
    late_reply: bool = False
    extra_visits: int = 0  # window visits beyond the first
    transferred_uninformed: bool = False
    victim: bool = False
    recovery: bool = False  # the follow-up after a 不满意 was put right
    complaint_outcome: str | None = None

    def score(self) -> float:
        """Latent satisfaction; the thresholds below turn it into 满意/基本满意/不满意."""
        s = 3.5 + self.station_quality + self.attitude + self.temperament
        s += {"consultation": 0.3, "service": 0.1, "alarm": -0.2, "petition": -1.0}.get(
            self.kind, 0.0
        )
        if self.late_dispatch:
            s -= 0.5
        if self.arrival_ratio > 1.0:
            s -= min(1.5, 0.8 * (self.arrival_ratio - 1.0) + 0.4)
        if self.late_reply:
            s -= 0.6
        s -= 0.6 * self.extra_visits
        if self.transferred_uninformed:
            s -= 1.2
        if self.party == "non_local":
            s -= 0.2  # the equity gap the boards should reveal (差异性执法)
        if self.recovery:
            s += 1.0
        s += {"substantiated": 0.6, "partially_substantiated": 0.2,
              "unsubstantiated": -1.3}.get(self.complaint_outcome or "", 0.0)  # fmt: skip
        return s

    def satisfaction(self, rng: random.Random) -> str:
        return satisfaction_of(self.score(), rng)

    def security(self, rng: random.Random) -> str:
        s = (
            3.1
            + 0.5 * self.station_quality
            + {"rural": 0.2, "urban": -0.1}.get(self.area_type, 0.0)
        )
        if self.victim:
            s -= 0.9
        u = s + _logistic(rng)
        if u < 0:
            return "unsafe"
        return "basically_safe" if u < 2.0 else "safe"

    def complaint_category(self) -> str:
        if self.attitude < -0.5:
            return "attitude"
        if self.late_dispatch or self.arrival_ratio > 1.5:
            return "inaction"
        if self.extra_visits or self.late_reply:
            return "service_delay"
        if self.party == "non_local":
            return "unfair_enforcement"
        return "other"


def satisfaction_of(score: float, rng: random.Random) -> str:
    """满意/基本满意/不满意 from a latent score plus logistic noise (callbacks and survey)."""
    u = score + _logistic(rng)
    if u < 0:
        return "dissatisfied"
    return "basically_satisfied" if u < 1.75 else "satisfied"


def _logistic(rng: random.Random) -> float:
    u = min(max(rng.random(), 1e-12), 1 - 1e-12)
    return math.log(u / (1 - u))


VICTIM_CATEGORIES = frozenset(
    {"theft", "fraud", "fight", "robbery", "harassment", "domestic_violence"}
)
# A drill's answers to first callbacks (the chaos load): every value, 不满意 often.
DRILL_ANSWERS = {"satisfied": 45.0, "basically_satisfied": 30.0, "dissatisfied": 25.0}
P_WANTS_COMPLAINT = 0.10  # of 不满意 answers; doubled when the officer's attitude was poor
P_COMMENT = 0.3

# ---- callbacks ------------------------------------------------------------------------------

CALLBACK_FIRST_TRY = (20 * HOUR, 0.8)  # after resolution, moved into office hours
CALLBACK_RETRY = (4 * HOUR, 0.6)
P_REACHED = 0.74
P_DECLINED = 0.04
MAX_ATTEMPTS = 3
P_NEVER_CALLED = 0.06  # scaled down by station quality
P_SMS_ANSWER = 0.45
SMS_ANSWER_DELAY = (40 * MINUTE, 1.0)
P_PHONE_AFTER_SMS = 0.6  # SMS non-responders a station then phones
P_REOPEN_AFTER_DISSATISFIED = 0.10
P_ASSIGNED = 0.5  # callbacks given to a named officer before the call

# ---- complaints and supervision -------------------------------------------------------------

COMPLAINT_HANDOVER = (3 * HOUR, 0.8)  # intake first contact for a complaint (target 1 day)
COMPLAINT_ACK = (2 * DAY, 0.8)  # target 15 days
COMPLAINT_ASSIGN = (4 * HOUR, 0.7)
COMPLAINT_CONCLUDE = (16 * DAY, 0.6)  # target 60 days from acceptance
COMPLAINT_REPLY = (1.5 * DAY, 0.7)
COMPLAINT_CLOSE = (2 * DAY, 0.7)
P_EXTEND = 0.08
P_WITHDRAWN_EARLY = 0.06
OUTCOMES = {"substantiated": 15, "partially_substantiated": 15, "unsubstantiated": 55,
            "withdrawn": 15}  # fmt: skip
P_REMEDY = 0.6
P_DISPUTE = 0.05
P_ACCOUNTABILITY = 0.5
DIRECT_COMPLAINTS_PER_BUREAU_DAY = 0.15  # 12389 supervision hotline and letters to 督察
RECOVERY_REPORT = (3.0, 1.0)  # working days median, spread; policy: 5 working days
RECOVERY_VERDICT = {"rectified": 75, "partly_rectified": 20, "not_rectified": 5}
P_TRACK_PETITION = 0.3
TRACKING_REPORT = (4.0, 0.8)  # working days
INSPECTIONS_PER_BUREAU_WEEK = {"on_site": 1.0, "online": 2.0}
FINDINGS = {"case_file.missing_reply": 25, "duty.absent": 10, "window.long_wait": 20,
            "evidence.unregistered": 10, "attitude.rude": 15, "record.incomplete": 20}  # fmt: skip
SEVERITY = {"observation": 50, "deficiency": 38, "violation": 12}

# ---- visits and engagement ----------------------------------------------------------------

VISITS_PER_STATION_WORKDAY = 5.0
VISITS_PER_STATION_OFFDAY = 1.0
PROGRAMMES = {"aimin": 35, "household_survey": 20, "vulnerable": 15, "three_visits": 10,
              "open_evaluation": 8, "leadership": 7, "model_officer": 5}  # fmt: skip
VISIT_MODES = {"in_person": 80, "phone": 15, "group_chat": 3, "online": 2}
TARGETS = {"household": 65, "business": 22, "institution": 13}
P_NOBODY_HOME = {"urban": 0.17, "suburban": 0.12, "rural": 0.08}
P_REFUSED = {"urban": 0.07, "suburban": 0.04, "rural": 0.02}
P_RESCHEDULE = 0.6
P_ISSUE = 0.12
ISSUE_KINDS = {"opinion": 45, "help": 20, "consultation": 15, "tip": 10, "service": 5,
               "petition": 3, "alarm": 2}  # fmt: skip
ENGAGEMENTS_PER_STATION_WORKDAY = 0.07
ENGAGEMENT_TYPES = {"forum": 30, "law_outreach": 30, "beat_report": 15, "open_day": 10,
                    "monitor_forum": 8, "police_for_a_day": 7}  # fmt: skip
PARTICIPANTS = {"forum": (20, 60), "law_outreach": (50, 300), "beat_report": (20, 80),
                "open_day": (30, 200), "monitor_forum": (8, 20),
                "police_for_a_day": (5, 15)}  # fmt: skip
VENUES = {"forum": "community", "law_outreach": "school", "beat_report": "community",
          "open_day": "station", "monitor_forum": "station",
          "police_for_a_day": "station"}  # fmt: skip
FIELD_RESOLVE = (2 * DAY, 0.8)

# ---- resident survey (民意调查) ------------------------------------------------------------
# A random sample of everyone in a station's area, not only of those who contacted the
# police (issue 18): a bureau's supervisor defines a wave at the start of a window at least
# SURVEY_MIN_DAYS long, imports each station's frame and draws the sample; community
# officers then work the sample by phone (and in person, 入户) through the window.

SURVEY_MIN_DAYS = 1.0
# The bureau plans the wave's precision on what its stations can work in the wave's period:
# units attempted per station and day (at --rate 1). The precision then follows from
# n ≈ capacity: e = z·0.5 / √(expected response rate × capacity), rounded up to a whole
# point and kept within SURVEY_PRECISION (±5 to ±20 points).
SURVEY_UNITS_PER_STATION_DAY = 20.0
SURVEY_EXPECTED_RESPONSE = 0.5  # the wave's expected response rate (what it draws for)
SURVEY_PRECISION = (0.05, 0.20)
# The frame: residents of the station's area as on its household register (户籍与流动人口
# 登记), × the station's size; imported in parts (the API takes ~1,000 rows a request).
SURVEY_FRAME_PER_STATION = 400
SURVEY_FRAME_PART = 500
# Strata: the non-local share is the residents' (PARTY_SHARES, "non_local"); ages of adults
# after Zhejiang's 2020 census (about a quarter 60+), migrants much younger than locals.
PARTY_SHARES = {"local": 0.68, "non_local": 0.27, "vulnerable": 0.05}
SURVEY_AGE = {
    "local": {"18-29": 15.0, "30-44": 24.0, "45-59": 31.0, "60+": 30.0},
    "non_local": {"18-29": 36.0, "30-44": 40.0, "45-59": 19.0, "60+": 5.0},
}
SURVEY_P_MALE = {"local": 0.50, "non_local": 0.56}  # migrant workers: more men
# Fieldwork. Calls in 09:00-19:30 any day (the quiet hours are 20:00-08:00), first calls
# spread over the window, retries at another time of day; a unit gets up to
# SURVEY_PHONE_TRIES calls, then an officer visits SURVEY_P_IN_PERSON of those never
# reached. Contact per call by age and residence (the young and migrants are harder to
# reach, which is why the estimates are weighted); once reached, the outcome.
SURVEY_CALL_HOURS = (time(9, 0), time(19, 30))
SURVEY_FIRST_CALLS = 0.8  # first calls fall in the first 80 % of the window
SURVEY_RETRY = (20 * HOUR, 0.6)
SURVEY_PHONE_TRIES = 3
SURVEY_P_CONTACT = 0.40
SURVEY_CONTACT_TILT = {"18-29": -0.12, "30-44": -0.05, "45-59": 0.03, "60+": 0.12,
                       "non_local": -0.08}  # fmt: skip
SURVEY_P_IN_PERSON = 0.3
SURVEY_P_IN_PERSON_CONTACT = 0.6
SURVEY_REACHED = {"completed": 70.0, "refused": 20.0, "partial": 5.0, "ineligible": 5.0}
SURVEY_INELIGIBLE_NON_LOCAL = 2.0  # moved away: registered migrants leave more often
# Answers: a latent score like the callbacks', from the station's quality and the person's
# temperament, without a contact to judge by: lower at its base (about 90 % 满意 or 基本
# 满意, 65 % strictly), so the survey tracks the callbacks across stations but sits below
# them. Security on four levels (安全 … 不安全).
SURVEY_SATISFACTION_BASE = 2.6
SURVEY_SECURITY_BASE = 3.3
SURVEY_AGE_TILT = {"18-29": -0.2, "30-44": -0.1, "45-59": 0.0, "60+": 0.3}
SURVEY_CHANGE = {"better": 45.0, "same": 38.0, "worse": 5.0, "dont_know": 12.0}
SURVEY_PROBLEM = {
    "urban": {"fraud": 28, "traffic": 25, "theft": 18, "disputes": 6, "public_order": 6,
              "drugs_gambling": 2, "other": 5, "none": 10},
    "suburban": {"fraud": 24, "traffic": 20, "theft": 20, "disputes": 10, "public_order": 6,
                 "drugs_gambling": 4, "other": 4, "none": 12},
    "rural": {"fraud": 20, "traffic": 15, "theft": 14, "disputes": 16, "public_order": 4,
              "drugs_gambling": 8, "other": 5, "none": 18},
}  # fmt: skip
SURVEY_P_COMMENT = 0.15
# A drill (the chaos load's short windows): a wave in every window whatever its length,
# the first SURVEY_DRILL_UNITS units of each station's sample worked, calls minutes apart
# at any hour (one that falls in the default quiet hours, 20:00-08:00, is made in person,
# which the API takes at any hour), so nothing depends on the hour the run starts.
SURVEY_DRILL_UNITS = 10
SURVEY_DRILL_RETRY = (5 * MINUTE, 30 * MINUTE)


def survey_precision(units: float) -> float:
    """The margin a wave can promise when its stations attempt about `units` units each."""
    lo, hi = SURVEY_PRECISION
    if units <= 0:
        return hi
    e = 1.959964 * 0.5 / math.sqrt(SURVEY_EXPECTED_RESPONSE * units)
    return min(hi, max(lo, math.ceil(round(e * 100, 6)) / 100))


@dataclass
class Respondent:
    """A sampled resident as the questionnaire meets them."""

    area_type: str
    age_band: str
    residence: str
    station_quality: float = 0.0
    temperament: float = 0.0

    def contact(self, rng: random.Random) -> bool:
        p = SURVEY_P_CONTACT + SURVEY_CONTACT_TILT.get(self.age_band, 0.0)
        if self.residence == "non_local":
            p += SURVEY_CONTACT_TILT["non_local"]
        return rng.random() < p

    def reached(self, rng: random.Random) -> str:
        table = dict(SURVEY_REACHED)
        if self.residence == "non_local":
            table["ineligible"] *= SURVEY_INELIGIBLE_NON_LOCAL
        return choose(rng, table)

    def score(self) -> float:
        s = SURVEY_SATISFACTION_BASE + self.station_quality + self.temperament
        s += SURVEY_AGE_TILT.get(self.age_band, 0.0)
        if self.residence == "non_local":
            s -= 0.2  # as in the callbacks: the equity gap
        return s

    def satisfaction(self, rng: random.Random) -> str:
        return satisfaction_of(self.score(), rng)

    def security(self, rng: random.Random) -> str:
        s = SURVEY_SECURITY_BASE + 0.5 * self.station_quality + 0.5 * self.temperament
        s += {"rural": 0.2, "urban": -0.1}.get(self.area_type, 0.0)
        u = s + _logistic(rng)
        if u < -1.0:
            return "unsafe"
        if u < 0:
            return "not_very_safe"
        return "basically_safe" if u < 2.0 else "safe"

    def change(self, rng: random.Random) -> str:
        return choose(rng, SURVEY_CHANGE)

    def problem(self, rng: random.Random) -> str:
        return choose(rng, SURVEY_PROBLEM.get(self.area_type, SURVEY_PROBLEM["suburban"]))
