-- depends: 0001_kernel
-- Intake read model, updated in the same transaction as the events it is built from.

CREATE TABLE IF NOT EXISTS cases (
    case_id        text PRIMARY KEY,
    bureau         text        NOT NULL,
    station        text        NOT NULL,
    channel        text        NOT NULL,
    kind           text        NOT NULL,
    priority       text        NOT NULL,
    area_type      text        NOT NULL,
    branch         text        NOT NULL,
    status         text        NOT NULL,
    version        integer     NOT NULL,
    subject_id     text,
    received_at    timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS cases_by_bureau ON cases (bureau, received_at DESC, case_id);
CREATE INDEX IF NOT EXISTS cases_by_station ON cases (station, received_at DESC);

-- One row per promise; the sweeper scans open rows by due time.
CREATE TABLE IF NOT EXISTS case_deadlines (
    case_id     text        NOT NULL REFERENCES cases (case_id),
    deadline    text        NOT NULL,
    bureau      text        NOT NULL,
    due_at      timestamptz NOT NULL,
    met_at      timestamptz,
    breached_at timestamptz,
    cancelled   boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (case_id, deadline)
);
CREATE INDEX IF NOT EXISTS case_deadlines_open ON case_deadlines (due_at)
    WHERE met_at IS NULL AND NOT cancelled AND breached_at IS NULL;

CREATE TABLE IF NOT EXISTS bureau_policies (
    bureau     text PRIMARY KEY,
    policy     jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
