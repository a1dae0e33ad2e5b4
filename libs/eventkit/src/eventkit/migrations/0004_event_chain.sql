-- depends: 0003_outbox_notify_only_with_rows
-- Tamper evidence (eventkit.chain), used only by services that ask for it: each event's
-- keyed hash commits to its predecessor's. Nullable columns without a default, so adding
-- them rewrites nothing and services that never chain are unaffected.
ALTER TABLE events ADD COLUMN IF NOT EXISTS chain_prev text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS chain_hash text;

-- The last sealed version of every chained stream, itself authenticated: without it,
-- deleting a stream's newest events (or the whole stream) would leave a valid shorter chain.
CREATE TABLE IF NOT EXISTS event_chain_heads (
    stream_id  text PRIMARY KEY,
    version    integer     NOT NULL,
    chain_hash text        NOT NULL,
    head_mac   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
