-- depends: 2001_visits_read_model
-- Visits (走访) and engagement events (警民互动): read models written with their events.

CREATE TABLE IF NOT EXISTS visits (
    visit_id     text PRIMARY KEY,
    bureau       text        NOT NULL,
    station      text        NOT NULL,
    beat         text,
    programme    text        NOT NULL,
    mode         text        NOT NULL,
    target_type  text        NOT NULL,
    area_type    text        NOT NULL,
    officer_id   text        NOT NULL,
    officer_rank text        NOT NULL,
    subject_id   text,
    status       text        NOT NULL,
    outcome      text,
    feedback     text,
    planned_for  timestamptz NOT NULL,
    visited_at   timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    issues       integer     NOT NULL DEFAULT 0,
    version      integer     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- Beat and station histories are prefix scans on the unit code, newest first.
CREATE INDEX IF NOT EXISTS visits_by_unit ON visits (station text_pattern_ops, planned_for DESC);
CREATE INDEX IF NOT EXISTS visits_by_beat ON visits (beat, planned_for DESC) WHERE beat IS NOT NULL;
CREATE INDEX IF NOT EXISTS visits_by_officer ON visits (officer_id, planned_for DESC);

CREATE TABLE IF NOT EXISTS engagements (
    engagement_id text PRIMARY KEY,
    bureau        text        NOT NULL,
    station       text        NOT NULL,
    type          text        NOT NULL,
    venue         text        NOT NULL,
    organiser     text        NOT NULL,
    participants  integer     NOT NULL,
    held_at       timestamptz NOT NULL,
    opinions      integer     NOT NULL DEFAULT 0,
    issues        integer     NOT NULL DEFAULT 0,
    version       integer     NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS engagements_by_unit ON engagements (station text_pattern_ops, held_at DESC);

-- Every issue raised in the field, with the case intake opens for it (case id = issue id).
CREATE TABLE IF NOT EXISTS raised_issues (
    issue_id    text PRIMARY KEY,
    source_type text        NOT NULL,
    source_id   text        NOT NULL,
    number      integer     NOT NULL,
    bureau      text        NOT NULL,
    station     text        NOT NULL,
    kind        text        NOT NULL,
    category    text,
    raised_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS raised_issues_by_source ON raised_issues (source_id);
