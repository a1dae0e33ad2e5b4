"""Per-item state and what an item contributes to the figures.

An *item* is what the public brought to the police: an intake case (or, later, a complaint),
together with the streams that follow it (its callbacks). Its state maps each stream to the
facts applied, by stream version:

    {"p": <source partition>, "s": {<stream id>: {"<version>": <fact>, ...}, ...},
     "o": {<source topic>: <offset after the last event of it that changed the item>}}

That map only grows, and merging two states is a union, so the state is a join-semilattice:
applying an event twice, replaying a topic, or merging a changelog record written by a
worker that lost its partition mid-flight all give the same state. Every figure is a
function of the state (`observations`), never of the order or the number of deliveries.

`o` (merged by maximum, also a join) says how far into each source partition the item's
changelog record reaches: a worker that recovers the table resumes reading there, not at
the group's committed offset, when the changelog holds less than the commit claims.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jingmin_metrics.domain.clock import latency_ms, local_day, local_hour
from jingmin_metrics.domain.facts import Fact
from jingmin_metrics.domain.measures import STRATA

State = dict[str, Any]

OUTCOMES = frozenset({"resolved", "transferred", "escalated", "rejected"})
# Which facts meet (end) a promise, as the intake Case aggregate applies them; an outcome
# also cancels every open promise.
MEETS: dict[str, frozenset[str]] = {
    "first_contact": frozenset({"first_contact"}),
    "dispatch": frozenset({"dispatched"}),
    "arrival": frozenset({"arrived"}),
    "resolution": frozenset(),
}
_TRIGGER = re.compile(r"-([a-z_]{1,32})$")


@dataclass(frozen=True, slots=True)
class Observation:
    """One unit an item adds to a cell: measure, bureau, bureau day (None: now), dims, value."""

    measure: str
    bureau: str
    day: str | None
    dims: tuple[str, ...]
    value: int = 1


def new_state(partition: int) -> State:
    return {"p": partition, "s": {}}


def encode(state: State) -> bytes:
    return json.dumps(state, separators=(",", ":"), sort_keys=True).encode()


def decode(raw: bytes) -> State:
    state: State = json.loads(raw)
    return state


def add_fact(state: State, stream_id: str, version: int, fact: Fact) -> bool:
    """Record a fact; False when this (stream, version) was already applied (a duplicate)."""
    facts = state["s"].setdefault(stream_id, {})
    key = str(version)
    if key in facts:
        return False
    facts[key] = fact
    return True


def merge(a: State, b: State) -> State:
    """The union of two states of one item (commutative, associative, idempotent)."""
    streams: dict[str, dict[str, Fact]] = {}
    for source in (a, b):
        for stream_id, facts in source["s"].items():
            target = streams.setdefault(stream_id, {})
            for version, fact in facts.items():
                # Equal by construction (an event never changes); keep the first for
                # determinism if a producer ever broke that rule.
                target.setdefault(version, fact)
    merged: State = {"p": max(a.get("p", 0), b.get("p", 0)), "s": streams}
    return merged


def fact_count(state: State) -> int:
    return sum(len(facts) for facts in state["s"].values())


def fact_types(state: State) -> dict[str, int]:
    counts: dict[str, int] = {}
    for facts in state["s"].values():
        for fact in facts.values():
            counts[fact["t"]] = counts.get(fact["t"], 0) + 1
    return counts


def _ordered(facts: dict[str, Fact]) -> list[tuple[int, Fact]]:
    return sorted(((int(v), f) for v, f in facts.items()), key=lambda vf: vf[0])


def _first(facts: list[tuple[int, Fact]], *types: str) -> tuple[int, Fact] | None:
    return next(((v, f) for v, f in facts if f["t"] in types), None)


def observations(state: State) -> list[Observation]:
    """Everything this item contributes to the figures, derived from its facts alone."""
    case: list[tuple[int, Fact]] | None = None
    callbacks: list[tuple[str, list[tuple[int, Fact]]]] = []
    others: list[tuple[str, list[tuple[int, Fact]]]] = []
    for stream_id, facts in sorted(state["s"].items()):
        ordered = _ordered(facts)
        if not ordered:
            continue
        if stream_id.startswith("intake:"):
            case = ordered
        elif ordered[0][1]["t"].startswith("cb_"):
            callbacks.append((stream_id, ordered))
        else:
            others.append((stream_id, ordered))
    out: list[Observation] = []
    case_dims = None
    if case is not None:
        case_dims = _case_dims(case)
        if case_dims is not None:
            out.extend(_case_observations(case, case_dims))
    for stream_id, facts in callbacks:
        out.extend(_callback_observations(stream_id, facts, case_dims))
    for stream_id, facts in others:
        if stream_id.startswith("complaints:"):
            out.extend(_complaint_observations(facts))
        elif stream_id.startswith("supervision:"):
            out.extend(_order_observations(facts))
            out.extend(_inspection_observations(facts))
        elif stream_id.startswith("visits:"):
            # A survey wave's stream also raises issues (IssueRaised, on the visit topic
            # keyed by the wave): they count as visits' issues do, whichever arrives first.
            out.extend(_visit_observations(facts))
            if _first(facts, "s_defined") is not None:
                out.extend(_survey_observations(stream_id.split(":", 1)[1], facts))
    return out


# ------------------------------------------------------------------------------- intake


def _case_dims(case: list[tuple[int, Fact]]) -> dict[str, str] | None:
    received = _first(case, "received")
    if received is None:
        return None  # facts of a case whose receipt has not arrived yet count for nothing
    r = received[1]
    first_contact = _first(case, "first_contact")
    return {
        "bureau": r["b"],
        "station": r["st"],
        "channel": r.get("channel", ""),
        "kind": r.get("kind", ""),
        "branch": r.get("branch", ""),
        "area_type": r.get("area_type", ""),
        "party_category": r.get("party_category", ""),
        "category": r.get("category", ""),
        "officer": first_contact[1].get("officer_id", "") if first_contact else "",
    }


_CASE_ORDER = (
    "station",
    "channel",
    "kind",
    "branch",
    "area_type",
    "party_category",
    "category",
    "officer",
)


def _dims(base: dict[str, str], at: int | None, *extra: str) -> tuple[str, ...]:
    head = tuple(base[k] for k in _CASE_ORDER)
    if at is None:
        return head + extra
    return (*head, str(local_hour(at)), *extra)


def _obs(measure: str, base: dict[str, str], at: int, *extra: str, value: int = 1) -> Observation:
    return Observation(measure, base["bureau"], local_day(at), _dims(base, at, *extra), value)


def _case_observations(case: list[tuple[int, Fact]], d: dict[str, str]) -> Iterator[Observation]:
    received = _first(case, "received")
    assert received is not None
    _rec_v, rec = received
    yield _obs("intake.received", d, rec["at"])

    dispatched = _first(case, "dispatched")
    if dispatched is not None:
        disp = dispatched[1]
        yield _obs(
            "intake.dispatch_latency", d, disp["at"], value=latency_ms(rec["at"], disp["at"])
        )
        arrived = _first(case, "arrived")
        if arrived is not None:
            arr = arrived[1]
            yield _obs(
                "intake.arrival_latency", d, arr["at"], value=latency_ms(disp["at"], arr["at"])
            )
            due = (disp.get("dues") or {}).get("arrival")
            if due is not None:
                on_target = "true" if arr["at"] <= due else "false"
                yield _obs("intake.arrival_target", d, arr["at"], on_target)

    resolved = _first(case, "resolved")
    if resolved is not None:
        res = resolved[1]
        yield _obs("intake.resolution_time", d, res["at"], value=latency_ms(rec["at"], res["at"]))
        if d["kind"] == "service":
            yield _obs("intake.services_completed", d, res["at"], _one_visit(case, resolved))

    outcome = _first(case, *OUTCOMES)
    if outcome is not None:
        out_v, out = outcome
        promised = any(f.get("dues") for v, f in case if v < out_v)
        if promised:
            breached = any(f["t"] == "breached" for v, f in case if v < out_v)
            yield _obs("intake.closed", d, out["at"], "false" if breached else "true")

    transferred = _first(case, "transferred")
    if transferred is not None:
        tr_v, tr = transferred
        first_contact = _first(case, "first_contact")
        start = first_contact[1]["at"] if first_contact and first_contact[0] < tr_v else rec["at"]
        yield _obs(
            "intake.transferred",
            d,
            tr["at"],
            tr.get("target_type", ""),
            value=latency_ms(start, tr["at"]),
        )

    for _v, f in case:
        if f["t"] == "reopened":
            yield _obs("intake.reopened", d, f["at"])

    breach_at = _live_breach_at(case)
    if breach_at is not None:
        yield Observation("intake.open_overdue", d["bureau"], None, _dims(d, None))
        # The same case on the day it fell overdue: a daily figure (the public topic) can
        # count it against that day, which a gauge of "now" cannot do.
        yield _obs("intake.overdue_open", d, breach_at)


def _one_visit(case: list[tuple[int, Fact]], resolved: tuple[int, Fact]) -> str:
    """ "unrecorded" when no service visit came before the resolution: such a case says
    nothing about visits, and counting it as one visit would make recording nothing score
    best (intake's older events say `one_visit: true` for it, so the facts decide)."""
    res_v, res = resolved
    if not any(f["t"] == "service_visit" for v, f in case if v < res_v):
        return "unrecorded"
    return "false" if res.get("one_visit") is False else "true"


def _live_breach_at(case: list[tuple[int, Fact]]) -> int | None:
    """When the first breached promise still open was breached (None: there is none). Still
    open: nothing after the breach met it, ended the case's open period (an outcome) or set
    a new due for it."""
    for i, (_v, f) in enumerate(case):
        if f["t"] != "breached":
            continue
        name = f["deadline"]
        ended = False
        for _w, later in case[i + 1 :]:
            t = later["t"]
            if t in OUTCOMES or t in MEETS.get(name, ()) or name in (later.get("dues") or {}):
                ended = True
                break
        if not ended:
            at: int = f["at"]
            return at
    return None


# ----------------------------------------------------------------------------- callbacks


def trigger_of(callback_id: str) -> str:
    match = _TRIGGER.search(callback_id)
    return match.group(1) if match else ""


def _callback_base(fact: Fact, case_dims: dict[str, str] | None) -> dict[str, str]:
    """Dimensions of a callback observation: the unit of the callback event itself, the rest
    from the item it follows (blank while that item is unknown)."""
    base = dict(case_dims) if case_dims else dict.fromkeys(_CASE_ORDER, "")
    base["bureau"] = fact["b"]
    base["station"] = fact["st"]
    return base


def _callback_observations(
    stream_id: str, facts: list[tuple[int, Fact]], case_dims: dict[str, str] | None
) -> Iterable[Observation]:
    trigger = trigger_of(stream_id)
    scheduled = _first(facts, "cb_scheduled")
    answered = _first(facts, "cb_answered")
    if scheduled is not None:
        s = scheduled[1]
        base = _callback_base(s, case_dims)
        yield _obs("callback.scheduled", base, s["at"], trigger, s.get("mode", ""))
        if answered is not None and answered[1]["at"] <= s["expires"]:
            yield _obs("callback.completed_in_window", base, s["at"], trigger)
    suppressed = _first(facts, "cb_suppressed")
    if suppressed is not None:
        s = suppressed[1]
        base = _callback_base(s, case_dims)
        yield _obs("callback.suppressed", base, s["at"], trigger, s.get("reason", ""))
    for _v, f in facts:
        if f["t"] == "cb_attempted":
            base = _callback_base(f, case_dims)
            yield _obs("callback.attempted", base, f["at"], trigger, f.get("outcome", ""))
    if answered is not None:
        a = answered[1]
        base = _callback_base(a, case_dims)
        yield _obs(
            "callback.answered",
            base,
            a["at"],
            trigger,
            a.get("satisfaction", ""),
            a.get("security", ""),
        )


# ----------------------------------------------------------------- complaints, supervision


def _plain(
    measure: str, fact: Fact, at: int | None, head: tuple[str, ...], *extra: str
) -> Observation:
    """An observation whose dims are `head`, the hour (unless a gauge), then `extra`."""
    if at is None:
        return Observation(measure, fact["b"], None, head + extra)
    return Observation(measure, fact["b"], local_day(at), (*head, str(local_hour(at)), *extra))


def _live(
    facts: list[tuple[int, Fact]],
    overdue: str,
    name_of: str | None,
    ends: dict[str, frozenset[str]],
) -> bool:
    """Some `overdue` fact that nothing after it ended: a fact type in `ends[name]` or a fact
    setting a new due for that deadline."""
    for i, (_v, f) in enumerate(facts):
        if f["t"] != overdue:
            continue
        name = f.get(name_of, "") if name_of else ""
        if not any(
            later["t"] in ends.get(name, frozenset())
            or (name and name in (later.get("dues") or {}))
            for _w, later in facts[i + 1 :]
        ):
            return True
    return False


_COMPLAINT_ENDS = {
    "acknowledgement": frozenset({"c_acknowledged", "c_concluded", "c_closed"}),
    "conclusion": frozenset({"c_concluded", "c_closed"}),
}


def _complaint_observations(facts: list[tuple[int, Fact]]) -> Iterator[Observation]:
    received = _first(facts, "c_received")
    if received is None:
        return
    r = received[1]
    head = (
        r["st"],
        r.get("channel", ""),
        r.get("category", ""),
        r.get("level", ""),
        r.get("party_category", ""),
    )
    yield _plain("complaints.received", r, r["at"], head)
    for deadline, met in (("acknowledgement", "c_acknowledged"), ("conclusion", "c_concluded")):
        first = next(
            (
                f
                for _v, f in facts
                if f["t"] == met or (f["t"] == "c_overdue" and f.get("deadline") == deadline)
            ),
            None,
        )
        if first is not None:
            on_time = first["t"] == met and first.get("on_time") is not False
            yield _plain(
                f"complaints.{deadline}", r, first["at"], head, "true" if on_time else "false"
            )
    concluded = _first(facts, "c_concluded")
    if concluded is not None:
        c = concluded[1]
        yield _plain("complaints.concluded", r, c["at"], head, c.get("outcome", ""))
    for _v, f in facts:
        if f["t"] == "c_closed":
            fixed = "true" if f.get("fixed") else "false"
            yield _plain("complaints.closed", r, f["at"], head, fixed)
        elif f["t"] == "c_reopened":
            yield _plain("complaints.reopened", r, f["at"], head)
        elif f["t"] == "c_escalated":
            yield _plain("complaints.escalated", r, f["at"], head, f.get("deadline", ""))
    if _live(facts, "c_overdue", "deadline", _COMPLAINT_ENDS):
        yield _plain("complaints.open_overdue", r, None, head)


_ORDER_ENDS = {"": frozenset({"o_reported", "o_closed", "o_escalated", "o_returned"})}


def _order_observations(facts: list[tuple[int, Fact]]) -> Iterator[Observation]:
    issued = _first(facts, "o_issued")
    if issued is None:
        return
    o = issued[1]
    head = (o["st"], o.get("order_type", ""), o.get("item_type", ""), o.get("level", ""))
    yield _plain("supervision.issued", o, o["at"], head)
    for _v, f in facts:
        t = f["t"]
        if t == "o_reported":
            on_time = "false" if f.get("on_time") is False else "true"
            yield _plain("supervision.reported", o, f["at"], head, on_time)
        elif t == "o_closed":
            yield _plain("supervision.closed", o, f["at"], head, f.get("verdict", ""))
        elif t == "o_overdue":
            yield _plain("supervision.overdue", o, f["at"], head)
        elif t == "o_escalated":
            yield _plain("supervision.escalated", o, f["at"], head)
    if _live(facts, "o_overdue", None, _ORDER_ENDS):
        yield _plain("supervision.open_overdue", o, None, head)


def _inspection_observations(facts: list[tuple[int, Fact]]) -> Iterator[Observation]:
    """Inspections (completed, with their findings by severity) and accountability actions:
    streams of the supervision topic other than orders."""
    started = _first(facts, "i_started")
    completed = _first(facts, "i_completed")
    if completed is not None:
        c = completed[1]
        head = (c["st"], started[1].get("kind", "") if started else "")
        yield _plain("supervision.inspections", c, c["at"], head)
        deficiencies, violations = int(c.get("deficiencies") or 0), int(c.get("violations") or 0)
        observations = max(int(c.get("findings") or 0) - deficiencies - violations, 0)
        for severity, n in (
            ("observation", observations),
            ("deficiency", deficiencies),
            ("violation", violations),
        ):
            if n:
                obs = _plain("supervision.findings", c, c["at"], head, severity)
                yield Observation(obs.measure, obs.bureau, obs.day, obs.dims, n)
    for _v, f in facts:
        if f["t"] == "a_taken":
            basis = (f["st"], f.get("kind", ""), f.get("basis_type", ""))
            yield _plain("supervision.accountability", f, f["at"], basis)


# ---------------------------------------------------------------- visits and engagements


def _visit_observations(facts: list[tuple[int, Fact]]) -> Iterator[Observation]:
    scheduled = _first(facts, "v_scheduled")
    held = _first(facts, "e_held")
    s = scheduled[1] if scheduled else {}
    e = held[1] if held else {}
    for _v, f in facts:
        t = f["t"]
        head: tuple[str, ...]
        if t in ("v_completed", "v_failed"):
            head = (
                f["st"],
                s.get("programme", ""),
                f.get("mode") or s.get("mode", ""),
                s.get("area_type", ""),
                s.get("officer_id", ""),
            )
            outcome = "completed" if t == "v_completed" else f.get("outcome", "")
            yield _plain("visits.attempted", f, f["at"], head, outcome)
            if t == "v_completed" and f.get("feedback"):
                yield _plain("visits.feedback", f, f["at"], head, f["feedback"])
        elif t == "issue":
            head = (f["st"], f.get("source_type", ""), f.get("kind", ""), f.get("category", ""))
            yield _plain("visits.issues", f, f["at"], head)
        elif t == "e_held":
            head = (f["st"], f.get("type", ""), f.get("venue", ""))
            yield _plain("engagement.held", f, f["at"], head)
            participants = int(f.get("participants") or 0)
            if participants:
                obs = _plain("engagement.participants", f, f["at"], head)
                yield Observation(obs.measure, obs.bureau, obs.day, obs.dims, participants)
        elif t == "e_opinion":
            head = (f["st"], e.get("type", ""), e.get("venue", ""))
            yield _plain("engagement.opinions", f, f["at"], head, f.get("feedback", ""))


# ------------------------------------------------------------------------- survey waves

INTERVIEWS = frozenset({"completed", "partial"})


def _survey_observations(wave: str, facts: list[tuple[int, Fact]]) -> Iterator[Observation]:
    """A wave's cells, on its first fieldwork day. The attempts carry no unit: the
    dispositions start as the draw left them (opted out = refused, the rest unknown) and
    each attempt moves one unit from its previous to its new final disposition; a
    respondent's cell (stratum, answers) leaves with the old answers and comes back with
    the new ones. The sums over the wave are the units' final states."""
    defined = _first(facts, "s_defined")
    if defined is None:
        return  # facts of a wave whose definition has not arrived count for nothing
    d = defined[1]
    bureau, day = d["b"], d["period_start"]
    margins: dict[str, Mapping[str, Mapping[str, int]]] = {}
    drawn: dict[str, Fact] = {}
    dispositions: Counter[tuple[str, ...]] = Counter()
    attempts: Counter[tuple[str, ...]] = Counter()
    respondents: Counter[tuple[str, ...]] = Counter()
    for _v, f in facts:
        t, station = f["t"], f["st"]
        if t == "s_frame":
            margins[station] = f.get("margins") or {}
        elif t == "s_drawn" and station not in drawn:
            drawn[station] = f
            refused = int(f.get("do_not_contact_count") or 0)
            dispositions[(station, "refused")] += refused
            dispositions[(station, "unknown_eligibility")] += int(f["sample_size"]) - refused
        elif t == "s_attempt":
            attempts[(station, f.get("mode", ""), f.get("outcome", ""))] += 1
            before, after = f.get("previous_disposition"), f.get("disposition")
            if before is None or after is None:
                continue  # published before attempts carried their disposition move
            dispositions[(station, before)] -= 1
            dispositions[(station, after)] += 1
            stratum = tuple(str((f.get("stratum") or {}).get(k, "")) for k in STRATA)
            previous = f.get("previous_answers") or {}
            if before in INTERVIEWS:
                respondents[(station, before, *stratum, *_coded(previous))] -= 1
            if after in INTERVIEWS:
                # A unit's answers are its earlier ones updated with this attempt's.
                now = {**previous, **(f.get("answers") or {})}
                respondents[(station, after, *stratum, *_coded(now))] += 1
    for station, f in sorted(drawn.items()):
        extra = (str(d.get("period_end", "")), str(d.get("confidence", "")))
        yield Observation("survey.drawn", bureau, day, (station, wave, *extra), f["sample_size"])
    for station, by_dim in sorted(margins.items()):
        for dim, counts in sorted(by_dim.items()):
            for category, people in sorted(counts.items()):
                if people:
                    dims = (station, wave, dim, category)
                    yield Observation("survey.frame", bureau, day, dims, int(people))
    for measure, counter in (
        ("survey.dispositions", dispositions),
        ("survey.attempts", attempts),
        ("survey.respondents", respondents),
    ):
        for (station, *rest), n in sorted(counter.items()):
            if n:
                yield Observation(measure, bureau, day, (station, wave, *rest), n)


def _coded(answers: Mapping[str, str]) -> tuple[str, str]:
    return (answers.get("satisfaction", ""), answers.get("security", ""))
