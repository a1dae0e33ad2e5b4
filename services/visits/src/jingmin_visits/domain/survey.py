"""The survey wave (民意调查): questionnaire, sample frames, reproducible draws, fieldwork.

One wave is one stream (`survey_wave`): a bureau admin defines it; each station's frame of
residents or households is imported into it; the station's sample is drawn from that frame
with a recorded seed; officers record every attempt on a sampled unit, with the answers
when the interview was completed or partial. Estimates are computed from this state
(`domain/estimates.py`), never from the frame's personal fields, which arrive here already
encrypted per person and are only ever decrypted for an audited contact read.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from statistics import NormalDist
from typing import Any
from zoneinfo import ZoneInfo

from jingmin_visits.domain.errors import IllegalTransition, InvalidCommand, NotFound
from jingmin_visits.domain.facts import Fact, check_time
from jingmin_visits.domain.visit import ISSUE_RAISED, issue_id

# Stored event names: stable, explicit, never derived from class or module names.
WAVE_DEFINED = "SurveyWaveDefined"
FRAME_IMPORTED = "SurveyFrameImported"
SAMPLE_DRAWN = "SurveySampleDrawn"
ATTEMPT_RECORDED = "SurveyAttemptRecorded"
INVITATION_SENT = "SurveyInvitationSent"
ANSWER_LINKED = "SurveyAnswerLinked"

EVENT_TYPES = (
    WAVE_DEFINED,
    FRAME_IMPORTED,
    SAMPLE_DRAWN,
    ATTEMPT_RECORDED,
    INVITATION_SENT,
    ANSWER_LINKED,
    ISSUE_RAISED,
)
# A problem the respondent described in words becomes an intake case (channel `field`),
# as an issue raised during a visit does; the programme names where it came from.
SURVEY_PROGRAMME = "resident_survey"

# A frame travels inside its import events (so a replay rebuilds the exact frame a draw was
# made from), in parts of at most one request body (64 KiB, about a thousand rows) each;
# this bounds the whole frame of one station, so that loading a wave stays cheap.
MAX_FRAME = 5000
# The questionnaire the standard items below belong to; a new wording is a new version.
QUESTIONNAIRE_VERSION = "2026.1"
# The draw algorithm, recorded with each draw so a later change cannot silently re-draw.
DRAW_ALGORITHM = "srswor-random-keys-v1"
BEIJING = ZoneInfo("Asia/Shanghai")


class SurveyMode(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    IN_PERSON = "in_person"  # during an 入户 visit


class Outcome(StrEnum):
    """What one attempt on a sampled unit came to (AAPOR's disposition groups)."""

    COMPLETED = "completed"  # I
    PARTIAL = "partial"  # P
    REFUSED = "refused"  # R (refusal or break-off)
    NON_CONTACT = "non_contact"  # NC
    INELIGIBLE = "ineligible"  # NE: not a resident of the area, number not a household…
    UNKNOWN_ELIGIBILITY = "unknown_eligibility"  # UH/UO: never learned whether eligible


# A unit's final disposition is its most informative attempt: an interview beats a
# refusal, learning the unit is ineligible removes it from every denominator, and a unit
# never reached stays of unknown eligibility.
_PRIORITY = (
    Outcome.COMPLETED,
    Outcome.PARTIAL,
    Outcome.INELIGIBLE,
    Outcome.REFUSED,
    Outcome.NON_CONTACT,
    Outcome.UNKNOWN_ELIGIBILITY,
)
_FINAL = frozenset({Outcome.COMPLETED, Outcome.INELIGIBLE})
INTERVIEWS = frozenset({Outcome.COMPLETED, Outcome.PARTIAL})


class SecurityAnswer(StrEnum):
    SAFE = "safe"  # 安全
    BASICALLY_SAFE = "basically_safe"  # 基本安全
    NOT_VERY_SAFE = "not_very_safe"  # 不太安全
    UNSAFE = "unsafe"  # 不安全


class SatisfactionAnswer(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class PerceivedChange(StrEnum):
    """Public order here compared with a year ago (与一年前相比)."""

    BETTER = "better"  # 变好
    SAME = "same"  # 差不多
    WORSE = "worse"  # 变差
    DONT_KNOW = "dont_know"  # 说不清


class LocalProblem(StrEnum):
    """The most pressing public-security problem where the respondent lives."""

    THEFT = "theft"  # 盗窃
    FRAUD = "fraud"  # 诈骗(含电信网络诈骗)
    TRAFFIC = "traffic"  # 交通秩序
    DISPUTES = "disputes"  # 邻里/家庭纠纷
    PUBLIC_ORDER = "public_order"  # 打架斗殴、寻衅滋事
    DRUGS_GAMBLING = "drugs_gambling"  # 黄赌毒
    OTHER = "other"
    NONE = "none"  # 没有突出问题


# The stratum attributes kept for weighting: they are on most household registers
# (户籍/流动人口登记), they move both answers and response propensity, and their frame
# counts are the margins the respondents are raked to.
class AgeBand(StrEnum):
    A18_29 = "18-29"
    A30_44 = "30-44"
    A45_59 = "45-59"
    A60_PLUS = "60+"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


class Residence(StrEnum):
    LOCAL = "local"  # 本地户籍
    NON_LOCAL = "non_local"  # 流动人口


STRATA: dict[str, type[StrEnum]] = {"age_band": AgeBand, "sex": Sex, "residence": Residence}

# The questionnaire's standard items: wire code, question, answer codes with their labels.
QUESTIONNAIRE: tuple[dict[str, Any], ...] = (
    {
        "item": "security",
        "question": "您觉得您居住的地方安全吗?",
        "answers": {"safe": "安全", "basically_safe": "基本安全", "not_very_safe": "不太安全",
                    "unsafe": "不安全"},
    },
    {
        "item": "satisfaction",
        "question": "您对当地公安机关的工作满意吗?",
        "answers": {"satisfied": "满意", "basically_satisfied": "基本满意",
                    "dissatisfied": "不满意"},
    },
    {
        "item": "change",
        "question": "与一年前相比,您觉得当地治安状况",
        "answers": {"better": "变好", "same": "差不多", "worse": "变差", "dont_know": "说不清"},
    },
    {
        "item": "problem",
        "question": "您觉得当地最突出的治安问题是什么?",
        "answers": {"theft": "盗窃", "fraud": "诈骗", "traffic": "交通秩序", "disputes": "矛盾纠纷",
                    "public_order": "打架斗殴", "drugs_gambling": "黄赌毒", "other": "其他",
                    "none": "没有突出问题"},
    },
    {"item": "problem_text", "question": "请具体说说这个问题(选填,将转交派出所受理)",
     "free_text": True},
    {"item": "comment", "question": "您对公安工作还有什么意见和建议?", "free_text": True},
)  # fmt: skip

ANSWER_ITEMS: dict[str, type[StrEnum]] = {
    "security": SecurityAnswer,
    "satisfaction": SatisfactionAnswer,
    "change": PerceivedChange,
    "problem": LocalProblem,
}
# A completed interview answered both headline items; a partial one at least one item.
REQUIRED_FOR_COMPLETE = ("security", "satisfaction")


# ---- sample size and the draw -------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    """n0 = z²·p(1−p)/e²; with the finite-population correction n1 = n0 / (1 + (n0 − 1)/N);
    units to draw n = ⌈n1 / expected response rate⌉, at most N."""

    n0: float
    n_fpc: float
    n: int


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 95 %."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def sample_size(
    frame_size: int,
    precision: float,
    confidence: float = 0.95,
    response_rate: float = 1.0,
    p: float = 0.5,
) -> SampleSize:
    """How many units to draw so the completed interviews give ±`precision` at `confidence`.

    p = 0.5 is the conservative choice: p(1−p) is largest there, so any true proportion is
    measured at least as precisely.
    """
    if frame_size < 1:
        raise InvalidCommand("the frame is empty")
    if not 0 < precision < 0.5 or not 0 < confidence < 1 or not 0 < response_rate <= 1:
        raise InvalidCommand("precision in (0, 0.5), confidence in (0, 1), response rate in (0, 1]")
    z = z_value(confidence)
    n0 = z * z * p * (1 - p) / (precision * precision)
    n_fpc = n0 / (1 + (n0 - 1) / frame_size)
    # Rounded to 9 places first so a product like 384.00000000000006 does not add a unit.
    n = min(frame_size, math.ceil(round(n_fpc / response_rate, 9)))
    return SampleSize(n0, n_fpc, n)


def draw_sample(unit_ids: Sequence[str], n: int, seed: int) -> list[str]:
    """A simple random sample without replacement of `n` units, reproducible from `seed`.

    Each unit, in frame order, gets one key from `random.Random(seed).random()`; the n
    smallest keys are drawn. Only `random()` is used because Python guarantees its
    sequence for a given seed across versions (the other methods may change), so the same
    seed and the same frame give the same sample on any Python the platform runs on.
    """
    rng = random.Random(seed)
    keys = [(rng.random(), index) for index in range(len(unit_ids))]
    keys.sort()
    return [unit_ids[index] for _, index in keys[:n]]


def frame_digest(units: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the frame in order (unit ids and strata, no personal data): a draw names
    the frame it was made from, so anyone can check a re-draw used the same one."""
    h = hashlib.sha256()
    for u in units:
        h.update("|".join([u["unit_id"], *(u[k] for k in STRATA)]).encode() + b"\n")
    return h.hexdigest()


def margins(units: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The frame's counts per stratum category: the totals weighting rakes to."""
    rows = list(units)
    return {dim: dict(sorted(Counter(u[dim] for u in rows).items())) for dim in STRATA}


# ---- the aggregate ------------------------------------------------------------------------


@dataclass
class Attempt:
    mode: str
    outcome: Outcome
    occurred_at: datetime


@dataclass
class SampledUnit:
    unit_id: str
    station: str
    strata: dict[str, str]
    subject_id: str
    do_not_contact: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)
    invited_until: datetime | None = None  # the SMS link sent last is valid until then
    invitations: int = 0
    issues: int = 0  # problems described in words, each an intake case

    @property
    def disposition(self) -> Outcome:
        """The final disposition (AAPOR): the most informative outcome so far."""
        outcomes = {a.outcome for a in self.attempts}
        if not outcomes and self.do_not_contact:
            return Outcome.REFUSED  # an opt-out is the person's standing refusal
        return next((o for o in _PRIORITY if o in outcomes), Outcome.UNKNOWN_ELIGIBILITY)


@dataclass
class FrameUnit:
    unit_id: str
    subject_id: str
    strata: dict[str, str]
    person: dict[str, Any]


@dataclass
class Draw:
    seed: int
    frame_size: int
    sample_size: int
    unit_ids: list[str]


@dataclass
class SurveyWave:
    wave_id: str
    version: int = 0
    status: str | None = None
    bureau: str = ""
    title: str = ""
    period_start: date | None = None
    period_end: date | None = None
    precision: float = 0.05
    station_precision: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.95
    expected_response_rate: float = 1.0
    modes: tuple[str, ...] = ()
    frames: dict[str, list[FrameUnit]] = field(default_factory=dict)
    frame_parts: dict[str, int] = field(default_factory=dict)
    frame_margins: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    draws: dict[str, Draw] = field(default_factory=dict)
    units: dict[str, SampledUnit] = field(default_factory=dict)
    last_occurred_at: datetime | None = None

    @classmethod
    def from_history(
        cls, wave_id: str, history: Iterable[tuple[str, Mapping[str, Any], datetime]]
    ) -> SurveyWave:
        wave = cls(wave_id)
        for type_, data, occurred_at in history:
            wave.apply(Fact(type_, dict(data), occurred_at))
        return wave

    def apply(self, fact: Fact) -> None:
        self.version += 1
        self.last_occurred_at = fact.occurred_at
        d = fact.data
        if fact.type == WAVE_DEFINED:
            self.status = "open"
            self.bureau, self.title = d["bureau"], d["title"]
            self.period_start = date.fromisoformat(d["period_start"])
            self.period_end = date.fromisoformat(d["period_end"])
            self.precision = float(d["precision"])
            self.station_precision = {k: float(v) for k, v in d["station_precision"].items()}
            self.confidence = float(d["confidence"])
            self.expected_response_rate = float(d["expected_response_rate"])
            self.modes = tuple(d["modes"])
        elif fact.type == FRAME_IMPORTED:
            # Part 1 starts the station's frame afresh; later parts extend it.
            station = d["station"]
            units = [
                FrameUnit(
                    u["unit_id"], u["subject_id"], {k: u[k] for k in STRATA}, u.get("person", {})
                )
                for u in d["units"]
            ]
            if d["part"] == 1:
                self.frames[station] = units
            else:
                self.frames[station].extend(units)
            self.frame_parts[station] = d["part"]
            self.frame_margins[station] = d["margins"]
        elif fact.type == SAMPLE_DRAWN:
            station = d["station"]
            self.draws[station] = Draw(
                d["seed"], d["frame_size"], d["sample_size"], list(d["unit_ids"])
            )
            by_id = {u.unit_id: u for u in self.frames[station]}
            blocked = set(d["do_not_contact"])
            for unit_id in d["unit_ids"]:
                u = by_id[unit_id]
                self.units[unit_id] = SampledUnit(
                    unit_id, station, dict(u.strata), u.subject_id, unit_id in blocked
                )
        elif fact.type == ATTEMPT_RECORDED:
            unit = self.units[d["unit_id"]]
            unit.attempts.append(Attempt(d["mode"], Outcome(d["outcome"]), fact.occurred_at))
            unit.answers.update(d.get("answers", {}))
        elif fact.type == INVITATION_SENT:
            invited = self.units[d["unit_id"]]
            invited.invited_until = datetime.fromisoformat(d["link_expires_at"])
            invited.invitations += 1
        elif fact.type == ISSUE_RAISED:
            self.units[d["unit_id"]].issues += 1
        # ANSWER_LINKED changes nothing: it is the audit record of a read.

    # ---- decisions ----------------------------------------------------------------------

    def precision_for(self, station: str) -> float:
        return self.station_precision.get(station, self.precision)

    def define(self, data: Mapping[str, Any], occurred_at: datetime, now: datetime) -> list[Fact]:
        if self.status is not None:
            raise IllegalTransition(f"survey wave {self.wave_id} already exists")
        check_time(occurred_at, now, None, "survey wave")
        if data["period_end"] < data["period_start"]:
            raise InvalidCommand("the period ends before it starts")
        for station in data["station_precision"]:
            self._own_station(station, str(data["bureau"]))
        return [Fact(WAVE_DEFINED, dict(data), occurred_at)]

    def _own_station(self, station: str, bureau: str | None = None) -> None:
        if len(station) != 9 or not station.startswith(bureau or self.bureau):
            raise InvalidCommand(f"station {station} does not belong to bureau {self.bureau}")

    def _open(self) -> None:
        if self.status is None:
            raise IllegalTransition(f"survey wave {self.wave_id} does not exist")

    def import_frame(
        self,
        station: str,
        part: int,
        units: Sequence[Mapping[str, Any]],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """One part of the station's frame, in file order (the order the draw keys follow).

        Part 1 starts the frame afresh (replacing an earlier one); part k follows part k − 1,
        so a frame larger than one request arrives in numbered pieces, and a retried or
        out-of-order piece is refused rather than counted twice.
        """
        self._open()
        self._own_station(station)
        check_time(occurred_at, now, self.last_occurred_at, "survey wave")
        if station in self.draws:
            raise IllegalTransition(
                f"the sample of station {station} is drawn: its frame can no longer change"
            )
        expected = self.frame_parts.get(station, 0) + 1
        if part != 1 and part != expected:
            raise IllegalTransition(f"station {station}'s frame expects part 1 or {expected}")
        before = [] if part == 1 else self.frames.get(station, [])
        if not units or len(before) + len(units) > MAX_FRAME:
            raise InvalidCommand(f"a part holds at least one unit; a frame at most {MAX_FRAME}")
        for u in units:
            for dim, vocabulary in STRATA.items():
                vocabulary(u[dim])  # ValueError is the caller's to turn into a 422
        whole = [{"unit_id": u.unit_id, **u.strata} for u in before] + [dict(u) for u in units]
        data = {
            "station": station,
            "part": part,
            "part_size": len(units),
            "frame_size": len(whole),
            "margins": margins(whole),
            "frame_digest": frame_digest(whole),
            "units": [dict(u) for u in units],
        }
        return [Fact(FRAME_IMPORTED, data, occurred_at)]

    def draw(
        self,
        station: str,
        seed: int,
        opted_out: Iterable[str],
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Draw the station's sample; units whose person opted out stay in the sample (it
        remains a probability sample) but are never contacted and count as refusals."""
        self._open()
        self._own_station(station)
        check_time(occurred_at, now, self.last_occurred_at, "survey wave")
        if station in self.draws:
            raise IllegalTransition(f"the sample of station {station} is already drawn")
        frame = self.frames.get(station)
        if not frame:
            raise IllegalTransition(f"station {station} has no frame: import one first")
        if not 0 <= seed < 2**63:
            raise InvalidCommand("the seed is an integer in [0, 2^63)")
        size = sample_size(
            len(frame), self.precision_for(station), self.confidence, self.expected_response_rate
        )
        drawn = draw_sample([u.unit_id for u in frame], size.n, seed)
        blocked = set(opted_out)
        subjects = {u.unit_id: u.subject_id for u in frame}
        do_not_contact = [u for u in drawn if subjects[u] in blocked]
        data: dict[str, Any] = {
            "station": station,
            "seed": seed,
            "algorithm": DRAW_ALGORITHM,
            "frame_size": len(frame),
            "frame_digest": frame_digest({"unit_id": u.unit_id, **u.strata} for u in frame),
            "precision": self.precision_for(station),
            "confidence": self.confidence,
            "expected_response_rate": self.expected_response_rate,
            "n0": round(size.n0, 6),
            "n_fpc": round(size.n_fpc, 6),
            "sample_size": size.n,
            "unit_ids": drawn,
            "do_not_contact": do_not_contact,
            "do_not_contact_count": len(do_not_contact),
        }
        return [Fact(SAMPLE_DRAWN, data, occurred_at)]

    def unit(self, unit_id: str) -> SampledUnit:
        found = self.units.get(unit_id)
        if found is None:
            raise NotFound(f"unit {unit_id} is not in the sample of wave {self.wave_id}")
        return found

    def record_attempt(
        self,
        unit_id: str,
        mode: str,
        outcome: Outcome,
        answers: Mapping[str, str],
        comment: Mapping[str, str] | None,
        occurred_at: datetime,
        now: datetime,
        *,
        quiet_hours: bool = False,
        opted_out: bool | None = None,
        problem_text: Mapping[str, str] | None = None,
        raised_by: str = "",
        area_type: str = "urban",
    ) -> list[Fact]:
        """One attempt on a sampled unit; a completed or partial one carries the answers.

        `quiet_hours`: `occurred_at` falls in the bureau's quiet hours (20:00–08:00 by
        default), when nobody is called or sent an SMS (DOMAIN §3.2); a visit in person is
        the household's to accept. `opted_out`: the person's standing opt-out now (None:
        as at the draw); a withdrawn opt-out makes the unit contactable again.
        `problem_text`: the most pressing problem in the respondent's words (encrypted),
        which also raises an issue for intake (one per unit and text, id derived from them).
        """
        self._open()
        unit = self.unit(unit_id)
        check_time(occurred_at, now, None, "survey attempt")
        last = unit.attempts[-1].occurred_at if unit.attempts else None
        if last is not None and occurred_at < last:
            raise InvalidCommand("occurred_at is before this unit's previous attempt")
        if unit.do_not_contact if opted_out is None else opted_out:
            raise IllegalTransition(f"unit {unit_id}'s person opted out: do not contact")
        if unit.disposition in _FINAL:
            raise IllegalTransition(f"unit {unit_id} is already {unit.disposition.value}")
        if mode not in self.modes:
            raise InvalidCommand(f"this wave's modes are {list(self.modes)}")
        if quiet_hours and mode in (SurveyMode.PHONE, SurveyMode.SMS):
            raise InvalidCommand("no calls or SMS in the quiet hours")
        assert self.period_start is not None and self.period_end is not None
        local_day = occurred_at.astimezone(BEIJING).date()
        if not self.period_start <= local_day <= self.period_end:
            raise InvalidCommand(
                f"fieldwork runs {self.period_start} to {self.period_end} (Beijing time)"
            )
        outcome = Outcome(outcome)
        codes = {k: ANSWER_ITEMS[k](v).value for k, v in answers.items()}
        if outcome in INTERVIEWS:
            missing = [k for k in REQUIRED_FOR_COMPLETE if k not in codes]
            if outcome == Outcome.COMPLETED and missing:
                raise InvalidCommand(f"a completed interview answers {missing}")
            if outcome == Outcome.PARTIAL and not codes and comment is None and not problem_text:
                raise InvalidCommand("a partial interview answers at least one item")
        elif codes or comment is not None or problem_text:
            raise InvalidCommand("only a completed or partial interview carries answers")
        before = unit.disposition
        # As `SampledUnit.disposition` will read with this attempt: an opt-out's standing
        # refusal gives way to any attempt (the opt-out was withdrawn).
        after = next(o for o in _PRIORITY if o in {a.outcome for a in unit.attempts} | {outcome})
        data: dict[str, Any] = {
            "unit_id": unit_id,
            "station": unit.station,
            "mode": mode,
            "outcome": outcome.value,
            "attempt": len(unit.attempts) + 1,
            # How the unit's final disposition moves, so that a reader without the unit
            # (metrics) can keep the dispositions and the respondents' cells exact: one unit
            # leaves `previous_disposition` (and, if it was a respondent, the cell of its
            # stratum and previous answers) and enters `disposition`.
            "previous_disposition": before.value,
            "disposition": after.value,
        }
        if before in INTERVIEWS or after in INTERVIEWS:
            data["stratum"] = dict(unit.strata)
        if before in INTERVIEWS:
            data["previous_answers"] = dict(unit.answers)
        if outcome in INTERVIEWS:
            data["answers"] = codes
            data["has_comment"] = comment is not None
            if comment is not None:
                data["comment"] = dict(comment)
        facts = [Fact(ATTEMPT_RECORDED, data, occurred_at)]
        if outcome in INTERVIEWS and problem_text:
            data["has_problem_text"] = True
            facts.append(self._issue(unit, problem_text, codes, raised_by, area_type, occurred_at))
        return facts

    def _issue(
        self,
        unit: SampledUnit,
        text: Mapping[str, str],
        codes: Mapping[str, str],
        raised_by: str,
        area_type: str,
        occurred_at: datetime,
    ) -> Fact:
        """The problem in words, for intake: its id is derived from the wave, the unit and
        the unit's issue number, so a redelivered message opens no second case. It names
        neither the unit nor the person (anonymous answers stay anonymous on every topic)."""
        number = unit.issues + 1
        data: dict[str, Any] = {
            "issue_id": issue_id(f"{self.wave_id}/{unit.unit_id}", number),
            "issue_number": number,
            "source_type": "survey",
            "source_id": self.wave_id,
            "unit_id": unit.unit_id,
            "station": unit.station,
            "kind": "opinion",
            "area_type": area_type,
            "raised_by": raised_by,
            "programme": SURVEY_PROGRAMME,
            "summary": dict(text),
        }
        problem = codes.get("problem")
        if problem is not None:
            data["category"] = f"survey.{problem}"
        return Fact(ISSUE_RAISED, data, occurred_at)

    # ---- SMS invitations ----------------------------------------------------------------

    def invitation_blocker(self, unit_id: str, now: datetime, opted_out: bool) -> str | None:
        """Why this unit gets no SMS link now (a count in the answer), or None.

        A link still valid counts as sent: sending again is idempotent, not a second SMS.
        """
        unit = self.unit(unit_id)
        if opted_out:
            return "opted_out"
        if unit.disposition in _FINAL or unit.disposition == Outcome.PARTIAL:
            return "answered"
        if unit.invited_until is not None and unit.invited_until > now:
            return "already_sent"
        return None

    def check_sms_fieldwork(self, now: datetime, quiet_hours: bool) -> None:
        """Invitations go out in the fieldwork period, by a wave that uses SMS, by day."""
        self._open()
        if SurveyMode.SMS not in self.modes:
            raise IllegalTransition(f"this wave's modes are {list(self.modes)}: no SMS")
        assert self.period_start is not None and self.period_end is not None
        if not self.period_start <= now.astimezone(BEIJING).date() <= self.period_end:
            raise IllegalTransition(
                f"fieldwork runs {self.period_start} to {self.period_end} (Beijing time)"
            )
        if quiet_hours:
            raise IllegalTransition("no SMS in the quiet hours: send them after they end")

    def invite(
        self, unit_id: str, link_expires_at: datetime, occurred_at: datetime, now: datetime
    ) -> list[Fact]:
        """The SMS with the unit's single-use link went out."""
        unit = self.unit(unit_id)
        if link_expires_at <= occurred_at:
            raise InvalidCommand("a link expires after it is sent")
        data = {
            "unit_id": unit_id,
            "station": unit.station,
            "channel": SurveyMode.SMS.value,
            "link_expires_at": link_expires_at.isoformat(),
            "invitation": unit.invitations + 1,
        }
        check_time(occurred_at, now, None, "survey invitation")
        return [Fact(INVITATION_SENT, data, occurred_at)]

    # ---- de-anonymisation (DOMAIN §6) ---------------------------------------------------

    def link_answer(
        self,
        unit_id: str,
        *,
        allowed: bool,
        actor: str,
        role: str,
        reason: Mapping[str, str] | None,
        occurred_at: datetime,
        now: datetime,
    ) -> list[Fact]:
        """Record a request to learn who gave a unit's answers: granted or refused.

        Refused requests are facts too, so a bureau sees who tried, not only who read.
        `reason` arrives encrypted under the person's key (it may name them).
        """
        self._open()
        unit = self.unit(unit_id)
        if unit.disposition not in INTERVIEWS:
            raise IllegalTransition(f"unit {unit_id} gave no answer: there is nothing to link")
        check_time(occurred_at, now, None, "survey answer link")
        data: dict[str, Any] = {
            "unit_id": unit_id,
            "station": unit.station,
            "result": "granted" if allowed else "refused",
            "requested_by": actor,
            "role": role,
            "disposition": unit.disposition.value,
        }
        if reason is not None:
            data["reason"] = dict(reason)
        return [Fact(ANSWER_LINKED, data, occurred_at)]
