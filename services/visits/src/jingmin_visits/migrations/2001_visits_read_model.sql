-- depends: 0001_kernel
-- Visits read model and consumer state, written in the same transaction as the events.

-- What the callback policy needs to know about each intake case, from CaseReceived.
CREATE TABLE IF NOT EXISTS intake_cases (
    case_id     text PRIMARY KEY,
    bureau      text        NOT NULL,
    station     text        NOT NULL,
    kind        text        NOT NULL,
    channel     text        NOT NULL,
    category    text,
    subject_id  text,
    received_at timestamptz NOT NULL,
    resolved_at timestamptz
);

CREATE TABLE IF NOT EXISTS callbacks (
    callback_id        text PRIMARY KEY,
    case_id            text        NOT NULL,
    trigger            text        NOT NULL,
    bureau             text        NOT NULL,
    station            text        NOT NULL,
    subject_id         text,
    status             text        NOT NULL,
    mode               text,
    due_at             timestamptz,
    original_due_at    timestamptz,
    expires_at         timestamptz,
    suppression_reason text,
    attempts           integer     NOT NULL DEFAULT 0,
    last_outcome       text,
    satisfaction       text,
    security           text,
    version            integer     NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_open_by_station ON callbacks (station, due_at)
    WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS callbacks_expiring ON callbacks (expires_at)
    WHERE status = 'scheduled';

CREATE TABLE IF NOT EXISTS opt_outs (
    subject_id  text PRIMARY KEY,
    bureau      text        NOT NULL,
    recorded_by text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS bureau_policies (
    bureau     text PRIMARY KEY,
    policy     jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
