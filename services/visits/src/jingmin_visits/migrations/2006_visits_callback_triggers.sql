-- depends: 2004_visits_complaint_origins
-- The enforcement, crime-victim and preventable-case callbacks: a category learnt when a case
-- is classified (it suppresses later callbacks as the receipt's own category does), and what
-- each callback is for (a survey, a notification 告知, prevention advice).
ALTER TABLE intake_cases ADD COLUMN IF NOT EXISTS classified_category text;
ALTER TABLE callbacks ADD COLUMN IF NOT EXISTS purpose text NOT NULL DEFAULT 'survey';
