-- depends: 1002_case_source_ref
-- When each promise was first recorded, by the server's clock. The sweeper judges a promise
-- no sooner than the bureau's grace after it was recorded: a case entered after the fact (a
-- paper record, a backfill, a replayed history) has every due time in the past already, and
-- its next step, entered a moment later, would otherwise race the sweeper for a breach.
-- Existing promises keep their behaviour (-infinity: judged by due time alone).
ALTER TABLE case_deadlines ADD COLUMN IF NOT EXISTS recorded_at timestamptz NOT NULL
    DEFAULT '-infinity';
ALTER TABLE case_deadlines ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
