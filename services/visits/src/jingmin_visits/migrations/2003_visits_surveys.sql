-- depends: 2002_visits_outreach
-- SMS surveys: single-use links, the development SMS sink, and what the dispatcher did.

CREATE TABLE IF NOT EXISTS survey_tokens (
    token_id    text PRIMARY KEY,
    callback_id text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX IF NOT EXISTS survey_tokens_by_callback ON survey_tokens (callback_id);

-- Development and tests only (the SMS gateway's local sink); numbers are masked.
CREATE TABLE IF NOT EXISTS sms_sink (
    message_id text PRIMARY KEY,
    to_masked  text        NOT NULL,
    text       text        NOT NULL,
    reference  text        NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS survey_sent_at timestamptz;
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS wants_complaint boolean;
-- The officer a callback was given to ("my callbacks due today").
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS assignee text;
CREATE INDEX IF NOT EXISTS callbacks_by_assignee ON callbacks (assignee, due_at)
    WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS callbacks_sms_to_send ON callbacks (created_at)
    WHERE status = 'scheduled' AND mode = 'sms' AND survey_sent_at IS NULL;
