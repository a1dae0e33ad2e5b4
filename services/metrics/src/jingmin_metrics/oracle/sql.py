# SQL reads best unwrapped: long CASE expressions stay on one line.
# ruff: noqa: E501
"""SQL that recomputes the processors' cells from each service's own `events` table.

Written from the metric definitions (README "Metrics reference"), not from the stream code:
each query turns stored events into observation rows `(measure, bureau, at, dims, value)`
(`at` NULL for a gauge of the present), aggregated here into cells. Callbacks need the case
they follow; the case dimensions are read from the intake database and loaded into a
temporary table beside the visits events, so that join is SQL too.
"""

from __future__ import annotations

# A case's dimensions, in the order of CASE_DIMS without the hour.
CASE_DIMENSIONS = """
WITH rec AS (
    SELECT DISTINCT ON (stream_id) stream_id AS case_id, bureau, data->>'station' AS station,
           coalesce(data->>'channel', '') AS channel, coalesce(data->>'kind', '') AS kind,
           coalesce(data->>'branch', '') AS branch, coalesce(data->>'area_type', '') AS area_type,
           coalesce(data->>'party_category', '') AS party_category,
           coalesce(data->>'category', '') AS category, occurred_at AS at, version AS v
    FROM events WHERE type = 'CaseReceived' ORDER BY stream_id, version
), fc AS (
    SELECT DISTINCT ON (stream_id) stream_id AS case_id, version AS v, occurred_at AS at,
           coalesce(data->>'officer_id', '') AS officer
    FROM events WHERE type = 'FirstContactAssigned' ORDER BY stream_id, version
)
SELECT rec.case_id, rec.bureau, rec.station, rec.channel, rec.kind, rec.branch, rec.area_type,
       rec.party_category, rec.category, coalesce(fc.officer, '') AS officer
FROM rec LEFT JOIN fc USING (case_id)
"""

# Beijing calendar (every bureau keeps it): the hour dimension and the day of a cell.
_HOUR = "extract(hour FROM {t} AT TIME ZONE 'Asia/Shanghai')::int::text"
_MS = "floor(extract(epoch FROM ({b}) - ({a})) * 1000)::bigint"


def _dims(prefix: str, at: str, *extra: str) -> str:
    base = ", ".join(
        f"{prefix}.{d}"
        for d in (
            "station",
            "channel",
            "kind",
            "branch",
            "area_type",
            "party_category",
            "category",
            "officer",
        )
    )
    parts = [base, _HOUR.format(t=at), *extra]
    return "ARRAY[" + ", ".join(parts) + "]::text[]"


INTAKE_TYPES = [
    "CaseReceived",
    "FirstContactAssigned",
    "CaseDispatched",
    "ArrivedOnScene",
    "ServiceApplicationRecorded",
    "CaseTransferred",
    "CaseEscalated",
    "CaseResolved",
    "CaseRejected",
    "CaseReopened",
    "CaseClosed",
    "DeadlineBreached",
]
OUTCOMES = "('CaseResolved', 'CaseTransferred', 'CaseEscalated', 'CaseRejected')"

INTAKE_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS case_id, version AS v, type, bureau, data, occurred_at AS at
    FROM events WHERE type = ANY($1::text[])
), c AS (
    SELECT DISTINCT ON (r.case_id) r.case_id, r.v, r.at, r.bureau,
           r.data->>'station' AS station,
           coalesce(r.data->>'channel', '') AS channel, coalesce(r.data->>'kind', '') AS kind,
           coalesce(r.data->>'branch', '') AS branch,
           coalesce(r.data->>'area_type', '') AS area_type,
           coalesce(r.data->>'party_category', '') AS party_category,
           coalesce(r.data->>'category', '') AS category,
           coalesce((SELECT f.data->>'officer_id' FROM ev f
                     WHERE f.case_id = r.case_id AND f.type = 'FirstContactAssigned'
                     ORDER BY f.v LIMIT 1), '') AS officer
    FROM ev r WHERE r.type = 'CaseReceived' ORDER BY r.case_id, r.v
), firsts AS (
    SELECT DISTINCT ON (case_id, type) case_id, type, v, at, data
    FROM ev ORDER BY case_id, type, v
), outcome AS (
    SELECT DISTINCT ON (case_id) case_id, v, at FROM ev
    WHERE type IN {OUTCOMES} ORDER BY case_id, v
), live_breach AS (
    -- per case, the first breach nothing after it met, ended or gave a new due
    SELECT DISTINCT ON (b.case_id) b.case_id, b.at FROM ev b
    WHERE b.type = 'DeadlineBreached' AND NOT EXISTS (
        SELECT 1 FROM ev l
        WHERE l.case_id = b.case_id AND l.v > b.v AND (
            l.type IN {OUTCOMES}
            OR (b.data->>'deadline' = 'first_contact' AND l.type = 'FirstContactAssigned')
            OR (b.data->>'deadline' = 'dispatch' AND l.type = 'CaseDispatched')
            OR (b.data->>'deadline' = 'arrival' AND l.type = 'ArrivedOnScene')
            OR (jsonb_typeof(l.data->'deadlines') = 'object'
                AND l.data->'deadlines' ? (b.data->>'deadline'))))
    ORDER BY b.case_id, b.v
)
SELECT 'intake.received' AS m, c.bureau, c.at, {_dims("c", "c.at")} AS dims, 1::bigint AS val
FROM c
UNION ALL
SELECT 'intake.dispatch_latency', c.bureau, d.at, {_dims("c", "d.at")}, {_MS.format(a="c.at", b="d.at")}
FROM c JOIN firsts d ON d.case_id = c.case_id AND d.type = 'CaseDispatched'
UNION ALL
SELECT 'intake.arrival_latency', c.bureau, a.at, {_dims("c", "a.at")}, {_MS.format(a="d.at", b="a.at")}
FROM c JOIN firsts d ON d.case_id = c.case_id AND d.type = 'CaseDispatched'
       JOIN firsts a ON a.case_id = c.case_id AND a.type = 'ArrivedOnScene'
UNION ALL
SELECT 'intake.arrival_target', c.bureau, a.at,
       {_dims("c", "a.at", "CASE WHEN a.at <= (d.data->'deadlines'->>'arrival')::timestamptz THEN 'true' ELSE 'false' END")}, 1
FROM c JOIN firsts d ON d.case_id = c.case_id AND d.type = 'CaseDispatched'
       JOIN firsts a ON a.case_id = c.case_id AND a.type = 'ArrivedOnScene'
WHERE d.data->'deadlines'->>'arrival' IS NOT NULL
UNION ALL
SELECT 'intake.resolution_time', c.bureau, r.at, {_dims("c", "r.at")}, {_MS.format(a="c.at", b="r.at")}
FROM c JOIN firsts r ON r.case_id = c.case_id AND r.type = 'CaseResolved'
UNION ALL
SELECT 'intake.services_completed', c.bureau, r.at,
       {_dims("c", "r.at", "CASE WHEN NOT EXISTS (SELECT 1 FROM ev sv WHERE sv.case_id = c.case_id AND sv.type = 'ServiceApplicationRecorded' AND sv.v < r.v) THEN 'unrecorded' WHEN r.data->>'one_visit' = 'false' THEN 'false' ELSE 'true' END")}, 1
FROM c JOIN firsts r ON r.case_id = c.case_id AND r.type = 'CaseResolved'
WHERE c.kind = 'service'
UNION ALL
SELECT 'intake.closed', c.bureau, o.at,
       {_dims("c", "o.at", "CASE WHEN EXISTS (SELECT 1 FROM ev b WHERE b.case_id = c.case_id AND b.type = 'DeadlineBreached' AND b.v < o.v) THEN 'false' ELSE 'true' END")}, 1
FROM c JOIN outcome o ON o.case_id = c.case_id
WHERE EXISTS (SELECT 1 FROM ev p WHERE p.case_id = c.case_id AND p.v < o.v
              AND jsonb_typeof(p.data->'deadlines') = 'object'
              AND p.data->'deadlines' <> '{{}}'::jsonb)
UNION ALL
SELECT 'intake.transferred', c.bureau, t.at,
       {_dims("c", "t.at", "coalesce(t.data->>'target_type', '')")},
       {_MS.format(a="CASE WHEN f.v < t.v THEN f.at ELSE c.at END", b="t.at")}
FROM c JOIN firsts t ON t.case_id = c.case_id AND t.type = 'CaseTransferred'
       LEFT JOIN firsts f ON f.case_id = c.case_id AND f.type = 'FirstContactAssigned'
UNION ALL
SELECT 'intake.reopened', c.bureau, e.at, {_dims("c", "e.at")}, 1
FROM c JOIN ev e ON e.case_id = c.case_id AND e.type = 'CaseReopened'
UNION ALL
SELECT 'intake.open_overdue', c.bureau, NULL,
       ARRAY[c.station, c.channel, c.kind, c.branch, c.area_type, c.party_category,
             c.category, c.officer]::text[], 1
FROM c JOIN live_breach b ON b.case_id = c.case_id
UNION ALL
SELECT 'intake.overdue_open', c.bureau, b.at, {_dims("c", "b.at")}, 1
FROM c JOIN live_breach b ON b.case_id = c.case_id
"""

CALLBACK_TYPES = [
    "CallbackScheduled",
    "CallbackSuppressed",
    "CallbackAttempted",
    "CallbackAnswered",
    "CallbackExpired",
]

# Expects the temporary table `case_dims` (CASE_DIMENSIONS' columns) in the session.
CALLBACK_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS cb, version AS v, type, bureau, data, occurred_at AS at,
           coalesce(nullif(data->>'case_id', ''),
                    substring(stream_id FROM '^cb-([0-9a-f]{{32}})-')) AS root,
           coalesce(substring(stream_id FROM '-([a-z_]{{1,32}})$'), '') AS trigger
    FROM events WHERE type = ANY($1::text[])
), firsts AS (
    SELECT DISTINCT ON (root, cb, type) * FROM ev ORDER BY root, cb, type, v
), x AS (
    -- Each fact with the dimensions of the item it follows (blank when unknown), and the
    -- unit of the callback event itself.
    SELECT f.*, f.data->>'station' AS station,
           coalesce(k.channel, '') AS channel, coalesce(k.kind, '') AS kind,
           coalesce(k.branch, '') AS branch, coalesce(k.area_type, '') AS area_type,
           coalesce(k.party_category, '') AS party_category,
           coalesce(k.category, '') AS category, coalesce(k.officer, '') AS officer
    FROM firsts f LEFT JOIN case_dims k ON k.case_id = f.root
), attempts AS (
    SELECT e.*, e.data->>'station' AS station,
           coalesce(k.channel, '') AS channel, coalesce(k.kind, '') AS kind,
           coalesce(k.branch, '') AS branch, coalesce(k.area_type, '') AS area_type,
           coalesce(k.party_category, '') AS party_category,
           coalesce(k.category, '') AS category, coalesce(k.officer, '') AS officer
    FROM ev e LEFT JOIN case_dims k ON k.case_id = e.root
    WHERE e.type = 'CallbackAttempted'
)
SELECT 'callback.scheduled' AS m, s.bureau, s.at,
       {_dims("s", "s.at", "s.trigger", "coalesce(s.data->>'mode', '')")} AS dims, 1::bigint AS val
FROM x s WHERE s.type = 'CallbackScheduled'
UNION ALL
SELECT 'callback.completed_in_window', s.bureau, s.at, {_dims("s", "s.at", "s.trigger")}, 1
FROM x s JOIN x a ON a.root = s.root AND a.cb = s.cb AND a.type = 'CallbackAnswered'
WHERE s.type = 'CallbackScheduled' AND a.at <= (s.data->>'expires_at')::timestamptz
UNION ALL
SELECT 'callback.suppressed', s.bureau, s.at,
       {_dims("s", "s.at", "s.trigger", "coalesce(s.data->>'reason', '')")}, 1
FROM x s WHERE s.type = 'CallbackSuppressed'
UNION ALL
SELECT 'callback.attempted', a.bureau, a.at,
       {_dims("a", "a.at", "a.trigger", "coalesce(a.data->>'outcome', '')")}, 1
FROM attempts a
UNION ALL
SELECT 'callback.answered', a.bureau, a.at,
       {_dims("a", "a.at", "a.trigger", "coalesce(a.data->>'satisfaction', '')", "coalesce(a.data->>'security', '')")}, 1
FROM x a WHERE a.type = 'CallbackAnswered'
"""


def _head(prefix: str, names: tuple[str, ...], at: str | None, *extra: str) -> str:
    parts = [f"{prefix}.{n}" for n in names]
    if at is not None:
        parts.append(_HOUR.format(t=at))
    return "ARRAY[" + ", ".join([*parts, *extra]) + "]::text[]"


COMPLAINT_TYPES = [
    "ComplaintReceived",
    "ComplaintAcknowledged",
    "InvestigationExtended",
    "ComplaintConcluded",
    "ComplaintClosed",
    "ComplaintReopened",
    "ComplaintOverdue",
    "ComplaintEscalated",
]
_C = ("station", "channel", "category", "level", "party_category")

COMPLAINT_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS id, version AS v, type, bureau, data, occurred_at AS at
    FROM events WHERE type = ANY($1::text[])
), r AS (
    SELECT DISTINCT ON (id) id, v, at, bureau, data->>'station' AS station,
           coalesce(data->>'channel', '') AS channel, coalesce(data->>'category', '') AS category,
           coalesce(data->>'level', '') AS level,
           coalesce(data->>'party_category', '') AS party_category
    FROM ev WHERE type = 'ComplaintReceived' ORDER BY id, v
)
SELECT 'complaints.received' AS m, r.bureau, r.at, {_head("r", _C, "r.at")} AS dims, 1::bigint AS val
FROM r
UNION ALL
SELECT 'complaints.acknowledgement', r.bureau, f.at,
       {_head("r", _C, "f.at", "CASE WHEN f.type = 'ComplaintAcknowledged' THEN 'true' ELSE 'false' END")}, 1
FROM r CROSS JOIN LATERAL (
    SELECT type, at FROM ev e WHERE e.id = r.id AND (e.type = 'ComplaintAcknowledged'
        OR (e.type = 'ComplaintOverdue' AND e.data->>'deadline' = 'acknowledgement'))
    ORDER BY e.v LIMIT 1) f
UNION ALL
SELECT 'complaints.conclusion', r.bureau, f.at,
       {_head("r", _C, "f.at", "CASE WHEN f.type = 'ComplaintConcluded' AND coalesce(f.data->>'on_time', 'true') <> 'false' THEN 'true' ELSE 'false' END")}, 1
FROM r CROSS JOIN LATERAL (
    SELECT type, at, data FROM ev e WHERE e.id = r.id AND (e.type = 'ComplaintConcluded'
        OR (e.type = 'ComplaintOverdue' AND e.data->>'deadline' = 'conclusion'))
    ORDER BY e.v LIMIT 1) f
UNION ALL
SELECT 'complaints.concluded', r.bureau, f.at,
       {_head("r", _C, "f.at", "coalesce(f.data->>'outcome', '')")}, 1
FROM r CROSS JOIN LATERAL (
    SELECT at, data FROM ev e WHERE e.id = r.id AND e.type = 'ComplaintConcluded'
    ORDER BY e.v LIMIT 1) f
UNION ALL
SELECT 'complaints.closed', r.bureau, e.at,
       {_head("r", _C, "e.at", "CASE WHEN (e.data->>'fixed')::boolean THEN 'true' ELSE 'false' END")}, 1
FROM r JOIN ev e ON e.id = r.id AND e.type = 'ComplaintClosed'
UNION ALL
SELECT 'complaints.reopened', r.bureau, e.at, {_head("r", _C, "e.at")}, 1
FROM r JOIN ev e ON e.id = r.id AND e.type = 'ComplaintReopened'
UNION ALL
SELECT 'complaints.escalated', r.bureau, e.at,
       {_head("r", _C, "e.at", "coalesce(e.data->>'deadline', '')")}, 1
FROM r JOIN ev e ON e.id = r.id AND e.type = 'ComplaintEscalated'
UNION ALL
SELECT 'complaints.open_overdue', r.bureau, NULL, {_head("r", _C, None)}, 1
FROM r WHERE EXISTS (
    SELECT 1 FROM ev o WHERE o.id = r.id AND o.type = 'ComplaintOverdue' AND NOT EXISTS (
        SELECT 1 FROM ev l WHERE l.id = o.id AND l.v > o.v AND (
            l.type IN ('ComplaintConcluded', 'ComplaintClosed')
            OR (o.data->>'deadline' = 'acknowledgement' AND l.type = 'ComplaintAcknowledged')
            OR (jsonb_typeof(l.data->'deadlines') = 'object'
                AND l.data->'deadlines' ? (o.data->>'deadline')))))
"""

ORDER_TYPES = [
    "OrderIssued",
    "OrderReportedBack",
    "OrderReturned",
    "OrderClosed",
    "OrderOverdue",
    "OrderEscalated",
]
INSPECTION_TYPES = ["InspectionStarted", "InspectionCompleted", "AccountabilityActionTaken"]

INSPECTION_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS id, version AS v, type, bureau, data, occurred_at AS at,
           data->>'station' AS station
    FROM events WHERE type = ANY($1::text[])
), k AS (
    SELECT DISTINCT ON (id) id, coalesce(data->>'kind', '') AS kind
    FROM ev WHERE type = 'InspectionStarted' ORDER BY id, v
), c AS (
    SELECT DISTINCT ON (e.id) e.*, coalesce(k.kind, '') AS kind,
           coalesce((e.data->>'findings')::bigint, 0) AS findings,
           coalesce((e.data->>'deficiencies')::bigint, 0) AS deficiencies,
           coalesce((e.data->>'violations')::bigint, 0) AS violations
    FROM ev e LEFT JOIN k ON k.id = e.id WHERE e.type = 'InspectionCompleted' ORDER BY e.id, e.v
)
SELECT 'supervision.inspections' AS m, c.bureau, c.at,
       ARRAY[c.station, c.kind, {_HOUR.format(t="c.at")}]::text[] AS dims, 1::bigint AS val
FROM c
UNION ALL
SELECT 'supervision.findings', c.bureau, c.at,
       ARRAY[c.station, c.kind, {_HOUR.format(t="c.at")}, s.severity]::text[], s.n
FROM c CROSS JOIN LATERAL (VALUES
    ('observation', greatest(c.findings - c.deficiencies - c.violations, 0)),
    ('deficiency', c.deficiencies), ('violation', c.violations)) AS s(severity, n)
WHERE s.n > 0
UNION ALL
SELECT 'supervision.accountability', e.bureau, e.at,
       ARRAY[e.station, coalesce(e.data->>'kind', ''), coalesce(e.data->>'basis_type', ''),
             {_HOUR.format(t="e.at")}]::text[], 1
FROM ev e WHERE e.type = 'AccountabilityActionTaken'
"""
_O = ("station", "order_type", "item_type", "level")

ORDER_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS id, version AS v, type, bureau, data, occurred_at AS at
    FROM events WHERE type = ANY($1::text[])
), o AS (
    SELECT DISTINCT ON (id) id, v, at, bureau, data->>'station' AS station,
           coalesce(data->>'order_type', '') AS order_type,
           coalesce(data->>'item_type', '') AS item_type, coalesce(data->>'level', '') AS level
    FROM ev WHERE type = 'OrderIssued' ORDER BY id, v
)
SELECT 'supervision.issued' AS m, o.bureau, o.at, {_head("o", _O, "o.at")} AS dims, 1::bigint AS val
FROM o
UNION ALL
SELECT 'supervision.reported', o.bureau, e.at,
       {_head("o", _O, "e.at", "CASE WHEN e.data->>'on_time' = 'false' THEN 'false' ELSE 'true' END")}, 1
FROM o JOIN ev e ON e.id = o.id AND e.type = 'OrderReportedBack'
UNION ALL
SELECT 'supervision.closed', o.bureau, e.at,
       {_head("o", _O, "e.at", "coalesce(e.data->>'verdict', '')")}, 1
FROM o JOIN ev e ON e.id = o.id AND e.type = 'OrderClosed'
UNION ALL
SELECT 'supervision.overdue', o.bureau, e.at, {_head("o", _O, "e.at")}, 1
FROM o JOIN ev e ON e.id = o.id AND e.type = 'OrderOverdue'
UNION ALL
SELECT 'supervision.escalated', o.bureau, e.at, {_head("o", _O, "e.at")}, 1
FROM o JOIN ev e ON e.id = o.id AND e.type = 'OrderEscalated'
UNION ALL
SELECT 'supervision.open_overdue', o.bureau, NULL, {_head("o", _O, None)}, 1
FROM o WHERE EXISTS (
    SELECT 1 FROM ev d WHERE d.id = o.id AND d.type = 'OrderOverdue' AND NOT EXISTS (
        SELECT 1 FROM ev l WHERE l.id = d.id AND l.v > d.v
        AND l.type IN ('OrderReportedBack', 'OrderClosed', 'OrderEscalated', 'OrderReturned')))
"""

VISIT_TYPES = [
    "VisitScheduled",
    "VisitCompleted",
    "VisitFailed",
    "EngagementHeld",
    "OpinionRecorded",
    "IssueRaised",
]

VISIT_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS id, version AS v, type, bureau, data, occurred_at AS at,
           data->>'station' AS station
    FROM events WHERE type = ANY($1::text[])
), s AS (
    SELECT DISTINCT ON (id) id, coalesce(data->>'programme', '') AS programme,
           coalesce(data->>'mode', '') AS mode, coalesce(data->>'area_type', '') AS area_type,
           coalesce(data->>'officer_id', '') AS officer
    FROM ev WHERE type = 'VisitScheduled' ORDER BY id, v
), h AS (
    SELECT DISTINCT ON (id) id, coalesce(data->>'type', '') AS type,
           coalesce(data->>'venue', '') AS venue
    FROM ev WHERE type = 'EngagementHeld' ORDER BY id, v
), a AS (
    SELECT e.*, coalesce(s.programme, '') AS programme,
           coalesce(nullif(e.data->>'mode', ''), s.mode, '') AS vmode,
           coalesce(s.area_type, '') AS area_type, coalesce(s.officer, '') AS officer
    FROM ev e LEFT JOIN s ON s.id = e.id
    WHERE e.type IN ('VisitCompleted', 'VisitFailed')
)
SELECT 'visits.attempted' AS m, a.bureau, a.at,
       ARRAY[a.station, a.programme, a.vmode, a.area_type, a.officer, {_HOUR.format(t="a.at")},
             CASE WHEN a.type = 'VisitCompleted' THEN 'completed'
                  ELSE coalesce(a.data->>'outcome', '') END]::text[] AS dims, 1::bigint AS val
FROM a
UNION ALL
SELECT 'visits.feedback', a.bureau, a.at,
       ARRAY[a.station, a.programme, a.vmode, a.area_type, a.officer, {_HOUR.format(t="a.at")},
             a.data->>'feedback']::text[], 1
FROM a WHERE a.type = 'VisitCompleted' AND coalesce(a.data->>'feedback', '') <> ''
UNION ALL
SELECT 'visits.issues', e.bureau, e.at,
       ARRAY[e.station, coalesce(e.data->>'source_type', ''), coalesce(e.data->>'kind', ''),
             coalesce(e.data->>'category', ''), {_HOUR.format(t="e.at")}]::text[], 1
FROM ev e WHERE e.type = 'IssueRaised'
UNION ALL
SELECT 'engagement.held', e.bureau, e.at,
       ARRAY[e.station, coalesce(e.data->>'type', ''), coalesce(e.data->>'venue', ''),
             {_HOUR.format(t="e.at")}]::text[], 1
FROM ev e WHERE e.type = 'EngagementHeld'
UNION ALL
SELECT 'engagement.participants', e.bureau, e.at,
       ARRAY[e.station, coalesce(e.data->>'type', ''), coalesce(e.data->>'venue', ''),
             {_HOUR.format(t="e.at")}]::text[], (e.data->>'participants')::bigint
FROM ev e WHERE e.type = 'EngagementHeld' AND coalesce((e.data->>'participants')::bigint, 0) > 0
UNION ALL
SELECT 'engagement.opinions', e.bureau, e.at,
       ARRAY[e.station, coalesce(h.type, ''), coalesce(h.venue, ''), {_HOUR.format(t="e.at")},
             coalesce(e.data->>'feedback', '')]::text[], 1
FROM ev e LEFT JOIN h ON h.id = e.id WHERE e.type = 'OpinionRecorded'
"""

SURVEY_TYPES = [
    "SurveyWaveDefined",
    "SurveyFrameImported",
    "SurveySampleDrawn",
    "SurveyAttemptRecorded",
]
# AAPOR final disposition: the most informative attempt, in this order (visits' rule).
_PRIORITY = (
    "ARRAY['completed', 'partial', 'ineligible', 'refused', 'non_contact', 'unknown_eligibility']"
)

# From the stored events, with the units the topic never carries: each sampled unit's final
# disposition from its own attempts, its stratum from the frame it was drawn from, and its
# answers as the last given per item. Every cell falls on the wave's first fieldwork day.
SURVEY_OBSERVATIONS = f"""
WITH ev AS NOT MATERIALIZED (
    SELECT stream_id AS wave, version AS v, type, bureau, data
    FROM events WHERE type = ANY($1::text[])
), w AS (
    SELECT DISTINCT ON (wave) wave, bureau,
           (data->>'period_start')::date::timestamp AT TIME ZONE 'Asia/Shanghai' AS at,
           data->>'period_end' AS period_end, data->>'confidence' AS confidence
    FROM ev WHERE type = 'SurveyWaveDefined' ORDER BY wave, v
), frame AS (
    -- each part's margins are the whole frame's so far: the latest part's are the frame's
    SELECT DISTINCT ON (wave, data->>'station') wave, data->>'station' AS station,
           data->'margins' AS margins
    FROM ev WHERE type = 'SurveyFrameImported' ORDER BY wave, data->>'station', v DESC
), drawn AS (
    SELECT DISTINCT ON (wave, data->>'station') wave, data->>'station' AS station, data
    FROM ev WHERE type = 'SurveySampleDrawn' ORDER BY wave, data->>'station', v
), strata AS (
    SELECT DISTINCT ON (f.wave, x->>'unit_id') f.wave, x->>'unit_id' AS unit_id,
           x->>'age_band' AS age_band, x->>'sex' AS sex, x->>'residence' AS residence
    FROM ev f CROSS JOIN LATERAL jsonb_array_elements(f.data->'units') x
    WHERE f.type = 'SurveyFrameImported' ORDER BY f.wave, x->>'unit_id', f.v DESC
), att AS (
    SELECT wave, v, data->>'unit_id' AS unit_id, data
    FROM ev WHERE type = 'SurveyAttemptRecorded'
), unit AS (
    SELECT d.wave, d.station, u.unit_id,
           (SELECT min(array_position({_PRIORITY}, a.data->>'outcome')) FROM att a
            WHERE a.wave = d.wave AND a.unit_id = u.unit_id) AS rank,
           (d.data->'do_not_contact') ? u.unit_id AS blocked
    FROM drawn d CROSS JOIN LATERAL jsonb_array_elements_text(d.data->'unit_ids') AS u(unit_id)
), final AS (
    SELECT unit.wave, unit.station, unit.unit_id,
           CASE WHEN rank IS NOT NULL THEN ({_PRIORITY})[rank]
                WHEN blocked THEN 'refused' ELSE 'unknown_eligibility' END AS disposition
    FROM unit
)
SELECT 'survey.drawn' AS m, w.bureau, w.at,
       ARRAY[d.station, d.wave, w.period_end, w.confidence]::text[] AS dims,
       (d.data->>'sample_size')::bigint AS val
FROM drawn d JOIN w USING (wave)
UNION ALL
SELECT 'survey.frame', w.bureau, w.at, ARRAY[f.station, f.wave, dim.key, cat.key]::text[],
       cat.value::bigint
FROM frame f JOIN w USING (wave)
     CROSS JOIN LATERAL jsonb_each(f.margins) dim
     CROSS JOIN LATERAL jsonb_each_text(dim.value) cat
WHERE cat.value::bigint > 0
UNION ALL
SELECT 'survey.dispositions', w.bureau, w.at, ARRAY[x.station, x.wave, x.disposition]::text[], 1
FROM final x JOIN w USING (wave)
UNION ALL
SELECT 'survey.attempts', w.bureau, w.at,
       ARRAY[a.data->>'station', a.wave, a.data->>'mode', a.data->>'outcome']::text[], 1
FROM att a JOIN w USING (wave)
UNION ALL
SELECT 'survey.respondents', w.bureau, w.at,
       ARRAY[x.station, x.wave, x.disposition, s.age_band, s.sex, s.residence,
             coalesce((SELECT a.data->'answers'->>'satisfaction' FROM att a
                       WHERE a.wave = x.wave AND a.unit_id = x.unit_id
                       AND a.data->'answers' ? 'satisfaction' ORDER BY a.v DESC LIMIT 1), ''),
             coalesce((SELECT a.data->'answers'->>'security' FROM att a
                       WHERE a.wave = x.wave AND a.unit_id = x.unit_id
                       AND a.data->'answers' ? 'security' ORDER BY a.v DESC LIMIT 1), '')
       ]::text[], 1
FROM final x JOIN w USING (wave) JOIN strata s ON s.wave = x.wave AND s.unit_id = x.unit_id
WHERE x.disposition IN ('completed', 'partial')
"""
