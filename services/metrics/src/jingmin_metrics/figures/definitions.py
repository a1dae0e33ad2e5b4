"""Every figure's definition, written once: the metrics README's definitions table and the
monthly report's appendix are both rendered from `DEFINITIONS` (a test keeps the README in
step), so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Definition:
    key: str  # the JSON path under `figures` in GET /v1/figures
    figure: str
    name_zh: str
    numerator: str
    denominator: str
    window: str
    domain: str  # how it stands to DOMAIN.md §4


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "callbacks.satisfaction", "satisfaction rate", "满意率",
        "answers 满意 or 基本满意",
        "answered surveys (service-recovery follow-ups apart)", "answer time",
        "as §4. Every trigger's answers count, service recovery apart: the enforcement "
        "(执法回访), crime-victim notification (刑事被侵害人回访告知) and preventable-case "
        "callbacks ask the same 满意/安全 questions after their script, and victims of crime "
        "are whom the yardstick most concerns; leaving them out would measure the easy "
        "matters only. The `trigger` dimension tells them apart",
    ),
    Definition(
        "callbacks.satisfaction_strict", "satisfaction rate, strict", "非常满意率",
        "answers 满意", "answered surveys (service-recovery follow-ups apart)", "answer time",
        "as §4",
    ),
    Definition(
        "callbacks.security", "security rate", "安全感",
        "answers 安全 or 基本安全", "answered surveys (service-recovery follow-ups apart)",
        "answer time", "as §4",
    ),
    Definition(
        "callbacks.service_recovery", "service-recovery effect", "整改回访满意率",
        "answers 满意 or 基本满意 to service-recovery follow-ups (the callback after a "
        "不满意 and its rectification)",
        "answered service-recovery follow-ups", "answer time", "as §4",
    ),
    Definition(
        "callbacks.contact", "contact rate", "回访接通率",
        "callback attempts with outcome `reached`", "callback attempts (`CallbackAttempted`)",
        "attempt time",
        "differs: counts recorded call attempts only, i.e. phone callbacks. An SMS survey is "
        "no attempt (visits records `CallbackSurveySent`, no outcome); its reach shows in "
        "callback coverage. §4's \"attempted callbacks\" is read per attempt, so repeated "
        "unreachable calls lower the rate",
    ),
    Definition(
        "callbacks.coverage", "callback coverage (回访率)", "回访率",
        "scheduled callbacks answered at or before their expiry (`expires_at` = due + the "
        "bureau's `expire_after_seconds`, default 7 days)",
        "scheduled callbacks, service-recovery follow-ups apart (suppressed ones are counted "
        "apart, `callbacks.suppressed`)",
        "the cohort by scheduling time",
        "differs in the window: §4 says \"within the window\" without naming it; §5's targets "
        "(SMS within 2 h, phone within 3 days) set the callback's *due*, and an answer after "
        "the due but before expiry still counts as covered. Coverage by the due alone is not "
        "computed",
    ),
    Definition(
        "intake.dispatch_within_60s", "dispatch within 60 s", "60秒内派警率",
        "cases first dispatched within 60 s of receipt (the `le=\"60\"` bucket)",
        "cases dispatched", "dispatch time", "as §4 and §5 (NFPA 1225: 90 % within 60 s)",
    ),
    Definition(
        "intake.arrival_on_target", "arrival on target", "按时到场率",
        "first arrivals at or before the arrival due set at dispatch (the bureau's target by "
        "area type)",
        "first arrivals", "arrival time", "as §4",
    ),
    Definition(
        "intake.on_time", "on-time rate (boards, JSON)", "按时办结率",
        "cases with a promise reaching their first outcome with no promise breached before it",
        "those cases + open cases whose breach is still open now (`intake.open_overdue`)",
        "outcome time; open overdue: now", "as §4",
    ),
    Definition(
        "", "on-time rate (public daily topic)", "按时办结率（对外日报）",
        "as above, per bureau day",
        "cases reaching their outcome that day + open cases whose first breach still open fell "
        "that day (`intake.overdue_open`)",
        "outcome day; breach day (the day is revised when the case closes)",
        "as §4; a day cannot hold a \"now\" gauge, so an open overdue case counts on its "
        "breach day",
    ),
    Definition(
        "intake.one_visit", "one-visit completion (一次办结率)", "一次办结率",
        "service cases whose first resolution says `one_visit`",
        "service cases resolved with at least one service visit recorded before it",
        "resolution time",
        "differs: services with no visit recorded (`intake.services_unrecorded`) are left out "
        "of both and shown beside the rate, so recording nothing cannot score 100 %",
    ),
    Definition(
        "intake.referral", "referral rate", "移交率",
        "cases transferred (first `CaseTransferred`)", "intake cases received",
        "transfer time; receipt time", "as §4",
    ),
    Definition(
        "intake.reopen", "reopen rate (cases)", "警情重开率",
        "reopenings (each `CaseReopened`)",
        "cases with a promise reaching their first outcome (`intake.closed`)",
        "reopening time; outcome time", "as §4",
    ),
    Definition(
        "complaints.per_1000_cases", "complaint rate", "每千件警情投诉数",
        "complaints received (`complaints.received`: through intake, the complaints API or a "
        "survey's 我要投诉)",
        "intake cases received, ×1,000", "receipt time of each", "as §4",
    ),
    Definition(
        "", "equity complaint rate", "群体投诉率",
        "complaints received whose `party_category` is the group's",
        "intake cases of the group, ×1,000", "receipt time",
        "as §4; the same complaint set as the complaint rate. Complaints whose party nobody "
        "knows are `complaints_party_unknown`",
    ),
    Definition(
        "complaints.substantiation", "substantiation rate", "投诉查实率",
        "first conclusions substantiated or partially", "first conclusions",
        "conclusion time", "as §4",
    ),
    Definition(
        "complaints.acknowledged_on_time", "complaint acknowledgement on time",
        "投诉按时受理率",
        "complaints acknowledged before an overdue was recorded",
        "complaints whose acknowledgement fell due (the first of `ComplaintAcknowledged` and "
        "`ComplaintOverdue`)",
        "the first of the two", "as §4 (within deadline / due)",
    ),
    Definition(
        "complaints.concluded_on_time", "complaint conclusion on time", "投诉按时办结率",
        "complaints concluded by their (possibly extended) deadline before an overdue was "
        "recorded",
        "complaints whose conclusion fell due (the first of `ComplaintConcluded` and "
        "`ComplaintOverdue`)",
        "the first of the two", "as §4 (within deadline / due)",
    ),
    Definition(
        "complaints.reopen", "reopen rate (complaints)", "投诉重开率",
        "closures disputed (each `ComplaintReopened`)", "closures (each `ComplaintClosed`)",
        "event time of each", "as §4",
    ),
    Definition(
        "supervision.reported_on_time", "supervision report-back on time", "督办按时反馈率",
        "reports back on time",
        "reports back + open orders past their deadline now (`supervision.open_overdue`)",
        "report time; open overdue: now",
        "§4's on-time rule applied to orders: an order never reported back counts against "
        "the rate, so not reporting cannot score better than reporting late",
    ),
    Definition(
        "visits.refusal", "refusal rate", "走访拒访率",
        "visit attempts refused or with nobody home", "visit attempts", "attempt time",
        "as §4",
    ),
    Definition(
        "visits.officers_visiting", "officers visiting (全警走访)", "民警走访参与率",
        "officers with at least one completed visit",
        "officers active in the scope and period (cases or visits)", "visit time",
        "as §4 (officers with ≥1 visit / officers)",
    ),
    Definition(
        "survey.waves", "survey satisfaction, weighted (民意调查)", "群众满意度（抽样调查）",
        "Σ weights of respondents (completed or partial interviews) answering 满意 or 基本满意; "
        "each station's respondents raked to its frame's counts by age band, sex and residence",
        "Σ weights of respondents who answered the item; 95 % interval p ± 1.96·√v, v by "
        "Taylor linearisation with stations as strata (`eventkit.surveystats`, the code visits' "
        "own estimates use)",
        "the wave: its cells fall on its first fieldwork day, so a wave is in a period when its "
        "fieldwork starts in it",
        "as §4's satisfaction rate, asked of a random sample of residents instead of the people "
        "who contacted the police: beside the callbacks' rate, not pooled with it. Shown per "
        "wave (`waves`, the latest last) with n and the interval",
    ),
    Definition(
        "", "survey security, weighted (民意调查)", "群众安全感（抽样调查）",
        "Σ weights of respondents answering 安全 or 基本安全 (weights as above)",
        "Σ weights of respondents who answered the item; interval as above", "the wave",
        "as §4's security rate, asked of a random sample of residents",
    ),
    Definition(
        "", "survey satisfaction and security, unweighted", "满意度、安全感（未加权）",
        "respondents answering 满意 or 基本满意 (安全 or 基本安全)",
        "respondents who answered the item; interval p ± 1.96·√(p(1 − p)/(n − 1)) per "
        "station, the county pooling its respondents as one sample", "the wave",
        "descriptive: the respondents' own mix, before weighting to the frame",
    ),
    Definition(
        "", "survey response rate (AAPOR RR1)", "应答率 RR1",
        "completed interviews (I)",
        "sampled units: I + partial + refused (an opt-out counts) + non-contact + other + "
        "unknown eligibility (never attempted included); final disposition = the unit's most "
        "informative attempt", "the wave",
        "AAPOR Standard Definitions (10th ed.); §4 names no response rate",
    ),
    Definition(
        "", "survey response rate (AAPOR RR3)", "应答率 RR3",
        "completed interviews (I)",
        "as RR1 with unknown eligibility weighted by e = eligible / (eligible + ineligible) "
        "among units whose eligibility was resolved", "the wave",
        "AAPOR Standard Definitions (10th ed.)",
    ),
)  # fmt: skip


def by_key(key: str) -> Definition:
    return next(d for d in DEFINITIONS if d.key == key)


def openapi() -> str:
    """The figures route's OpenAPI description: each JSON figure's definition."""
    lines = [
        "Every figure of a scope (province, city, bureau or station) for a period. Ratios are "
        "pooled: `numerator` and `denominator` summed over the scope, `rate` their quotient "
        "(null when the denominator is 0). Definitions (DOMAIN.md §4; the metrics README and "
        "the monthly report's appendix say the same):",
        "",
    ]
    lines += [
        f"- `{d.key}` ({d.name_zh}, {d.figure}): {d.numerator} / {d.denominator}; "
        f"window: {d.window}; {d.domain}."
        for d in DEFINITIONS
        if d.key
    ]
    return "\n".join(lines)


def markdown() -> str:
    """The README's definitions table (paste the output; a test compares)."""
    lines = [
        "| figure | numerator | denominator | window (event time) | DOMAIN §4 |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {d.figure} | {d.numerator} | {d.denominator} | {d.window} | {d.domain} |"
        for d in DEFINITIONS
    ]
    return "\n".join(lines) + "\n"
