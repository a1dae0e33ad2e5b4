-- Kernel tables every service database has: event store, outbox, consumer tracking,
-- idempotency keys, per-person data keys.

-- The primary key (stream_id, version) is the optimistic-concurrency guard: two writers
-- that read the same version cannot both insert the next one.
CREATE TABLE IF NOT EXISTS events (
    global_position bigserial NOT NULL,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    event_id        uuid        NOT NULL UNIQUE,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    bureau          text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The writing transaction's id: readers only pass a transaction id once every older
    -- transaction has finished, so an event committed late is never skipped.
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_tx ON events (tx_id, global_position);
CREATE INDEX IF NOT EXISTS events_by_type ON events (stream_type, type);

-- Debezium outbox shape: id, aggregate_type, aggregate_id, type, payload, headers.
CREATE TABLE IF NOT EXISTS outbox (
    id             bigserial PRIMARY KEY,
    event_id       text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    type           text        NOT NULL,
    topic          text        NOT NULL,
    payload        json        NOT NULL,  -- json, not jsonb: the bytes sent are the bytes stored
    headers        json        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at   timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- A consumer records each message it applied in the same transaction as the effects.
CREATE TABLE IF NOT EXISTS processed_messages (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer, message_id)
);

-- Idempotency-Key on POST: the first response is kept and replayed to retries.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal    text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status       integer     NOT NULL,
    body         jsonb       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (principal, key)
);

-- Per-person data keys, wrapped by the master key. Deleting the row crypto-shreds every
-- field encrypted under it, wherever it was copied.
CREATE TABLE IF NOT EXISTS subject_keys (
    subject_id  text        PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS subject_erasures (
    subject_id text        PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    erased_by  text        NOT NULL,
    reason     text
);
