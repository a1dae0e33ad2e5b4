-- depends: 3001_complaints_read_model
-- The party category (local / non-local / vulnerable) of every intake case received, so a
-- complaint about a case, or from the survey of a callback that followed one, carries it
-- on ComplaintReceived: equity figures count complaints by it (metrics).

CREATE TABLE IF NOT EXISTS case_parties (
    case_id        text PRIMARY KEY,
    party_category text NOT NULL
);
