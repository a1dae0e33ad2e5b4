-- depends: 2003_visits_surveys
-- Where each complaint came from, so its callback borrows the contact from whoever holds it
-- (a complaint opened from an intake case or a callback keeps no contact of its own).
CREATE TABLE IF NOT EXISTS complaint_origins (
    complaint_id   text PRIMARY KEY,
    intake_case_id text,
    callback_id    text
);
