-- depends: 0001_kernel
-- Complaints and supervision read models, updated in the same transaction as the events.

CREATE TABLE IF NOT EXISTS complaints (
    complaint_id      text PRIMARY KEY,
    bureau            text        NOT NULL,
    station           text        NOT NULL,  -- the subject unit's station: scopes match it
    subject_unit      text        NOT NULL,
    channel           text        NOT NULL,
    category          text        NOT NULL,
    status            text        NOT NULL,
    level             text        NOT NULL,
    version           integer     NOT NULL,
    subject_id        text,
    anonymous         boolean     NOT NULL,
    investigator_unit text,
    extended          boolean     NOT NULL DEFAULT false,
    outcome           text,
    on_time           boolean,
    fixed             boolean     NOT NULL DEFAULT false,
    reopened          integer     NOT NULL DEFAULT 0,
    -- SHA-256 of the receipt code the complainant tracks it with; the code itself is not kept.
    receipt_hash      text UNIQUE,
    intake_case_id    text,
    callback_id       text,
    received_at       timestamptz NOT NULL,
    acknowledged_at   timestamptz,
    concluded_at      timestamptz,
    closed_at         timestamptz,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS complaints_by_station ON complaints (station, received_at DESC);
CREATE INDEX IF NOT EXISTS complaints_by_received ON complaints (received_at DESC, complaint_id);

CREATE TABLE IF NOT EXISTS complaint_deadlines (
    complaint_id text        NOT NULL REFERENCES complaints (complaint_id),
    deadline     text        NOT NULL,
    bureau       text        NOT NULL,
    due_at       timestamptz NOT NULL,
    met_at       timestamptz,
    breached_at  timestamptz,
    cancelled    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (complaint_id, deadline)
);
CREATE INDEX IF NOT EXISTS complaint_deadlines_open ON complaint_deadlines (due_at)
    WHERE met_at IS NULL AND NOT cancelled AND breached_at IS NULL;

CREATE TABLE IF NOT EXISTS supervision_orders (
    order_id    text PRIMARY KEY,
    bureau      text        NOT NULL,
    station     text        NOT NULL,
    owner_unit  text        NOT NULL,
    order_type  text        NOT NULL,
    item_type   text        NOT NULL,
    item_id     text        NOT NULL,
    level       text        NOT NULL,
    status      text        NOT NULL,
    due_at      timestamptz NOT NULL,
    breached    boolean     NOT NULL DEFAULT false,
    escalations integer     NOT NULL DEFAULT 0,
    verdict     text,
    case_id     text,
    callback_id text,
    version     integer     NOT NULL,
    issued_at   timestamptz NOT NULL,
    reported_at timestamptz,
    closed_at   timestamptz,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS supervision_orders_due ON supervision_orders (due_at)
    WHERE status = 'issued' AND NOT breached;
CREATE INDEX IF NOT EXISTS supervision_orders_by_station
    ON supervision_orders (station, issued_at DESC);
CREATE INDEX IF NOT EXISTS supervision_orders_by_item ON supervision_orders (item_type, item_id);

CREATE TABLE IF NOT EXISTS inspections (
    inspection_id text PRIMARY KEY,
    bureau        text        NOT NULL,
    station       text        NOT NULL,
    unit          text        NOT NULL,
    kind          text        NOT NULL,
    status        text        NOT NULL,
    findings      integer     NOT NULL DEFAULT 0,
    deficiencies  integer     NOT NULL DEFAULT 0,
    violations    integer     NOT NULL DEFAULT 0,
    version       integer     NOT NULL,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS inspections_by_station ON inspections (station, started_at DESC);

CREATE TABLE IF NOT EXISTS accountability_actions (
    action_id  text PRIMARY KEY,
    bureau     text        NOT NULL,
    station    text        NOT NULL,
    unit       text        NOT NULL,
    kind       text        NOT NULL,
    basis_type text        NOT NULL,
    basis_id   text        NOT NULL,
    taken_at   timestamptz NOT NULL,
    version    integer     NOT NULL
);
CREATE INDEX IF NOT EXISTS accountability_by_station ON accountability_actions (station, taken_at DESC);

-- Callbacks visits scheduled, remembered so an answer can name the person it came from.
CREATE TABLE IF NOT EXISTS callbacks_seen (
    callback_id text PRIMARY KEY,
    case_id     text,
    trigger     text,
    subject_id  text,
    bureau      text        NOT NULL,
    station     text        NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS bureau_policies (
    bureau     text PRIMARY KEY,
    policy     jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The online form's one-time nonces are its Idempotency-Keys (kernel table); nothing else
-- of the public's requests is kept.
