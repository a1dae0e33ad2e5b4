-- depends: 0003_outbox_notify_only_with_rows
-- The audit trail of the internal contact API (eventkit.contacts): every attempt to read a
-- person's name or phone, granted or refused, with who asked, why, and what they got.
-- Only a service that lends contacts writes rows; in the others the table stays empty.

CREATE TABLE IF NOT EXISTS contact_reads (
    read_id        bigserial   PRIMARY KEY,
    read_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The token's subject, roles and scopes; NULL/empty when no valid token was presented.
    reader         text,
    roles          text[]      NOT NULL DEFAULT '{}',
    scopes         text[]      NOT NULL DEFAULT '{}',
    -- NULL when the caller named no purpose the API knows (result invalid_purpose).
    purpose        text,
    -- NULL when the id in the path was malformed (result invalid_item).
    item_id        text,
    subject_id     text,
    -- The item's unit, when the item exists: what the listing is scoped by.
    station        text,
    result         text        NOT NULL CHECK (result IN (
                       'granted', 'unauthenticated', 'forbidden', 'invalid_purpose',
                       'invalid_item', 'not_found', 'out_of_scope', 'erased', 'error')),
    status         smallint    NOT NULL,
    correlation_id text,
    traceparent    text
);
CREATE INDEX IF NOT EXISTS contact_reads_by_item ON contact_reads (item_id, read_id DESC);
CREATE INDEX IF NOT EXISTS contact_reads_by_station
    ON contact_reads (station text_pattern_ops, read_id DESC);

-- An audit trail nobody can quietly edit: rows are only ever added. (A retention job, when
-- one exists, must say so explicitly by disabling the trigger in its own transaction.)
CREATE OR REPLACE FUNCTION contact_reads_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'contact_reads is an audit trail: rows are never changed or removed'
        USING ERRCODE = 'insufficient_privilege';
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS contact_reads_no_change ON contact_reads;
CREATE TRIGGER contact_reads_no_change BEFORE UPDATE OR DELETE ON contact_reads
    FOR EACH ROW EXECUTE FUNCTION contact_reads_append_only();
DROP TRIGGER IF EXISTS contact_reads_no_truncate ON contact_reads;
CREATE TRIGGER contact_reads_no_truncate BEFORE TRUNCATE ON contact_reads
    FOR EACH STATEMENT EXECUTE FUNCTION contact_reads_append_only();
