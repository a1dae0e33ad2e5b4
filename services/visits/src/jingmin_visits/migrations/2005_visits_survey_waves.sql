-- depends: 2004_visits_complaint_origins
-- Resident survey waves (民意调查): one row per wave, written with its events (the list view).
-- Frames, draws and answers live in the wave's stream; estimates are computed from it.

CREATE TABLE IF NOT EXISTS survey_waves (
    wave_id         text PRIMARY KEY,
    bureau          text        NOT NULL,
    title           text        NOT NULL,
    period_start    date        NOT NULL,
    period_end      date        NOT NULL,
    status          text        NOT NULL,
    stations_framed integer     NOT NULL DEFAULT 0,
    stations_drawn  integer     NOT NULL DEFAULT 0,
    sampled         integer     NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0,
    interviews      integer     NOT NULL DEFAULT 0,
    version         integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS survey_waves_by_bureau
    ON survey_waves (bureau text_pattern_ops, period_start DESC);
