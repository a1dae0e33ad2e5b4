-- depends: 1003_deadline_recorded_at
-- The unit register's read model: each station's and beat's current name and status,
-- written in the same statement as its events (application/units.py). The events are the
-- truth and keep every earlier name; this table answers "what is it called now".
CREATE TABLE IF NOT EXISTS units (
    code          text PRIMARY KEY,
    bureau        text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('station', 'beat')),
    parent        text NOT NULL,
    name          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'retired')),
    version       integer NOT NULL,
    registered_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- A scope is a code prefix (text_pattern_ops serves LIKE '3306%'); retiring a station
-- counts its active beats by parent.
CREATE INDEX IF NOT EXISTS units_code_prefix ON units (code text_pattern_ops);
CREATE INDEX IF NOT EXISTS units_parent ON units (parent) WHERE status = 'active';
