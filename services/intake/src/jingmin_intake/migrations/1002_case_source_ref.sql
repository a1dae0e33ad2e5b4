-- depends: 1001_intake_read_model
-- Where a case came from (a CAD id, or the visit and issue that raised it), so an officer
-- can go from a case to its source and list the cases one visit raised.
ALTER TABLE cases ADD COLUMN IF NOT EXISTS source_ref text;
UPDATE cases c SET source_ref = e.data->>'source_ref'
    FROM events e
    WHERE e.stream_id = c.case_id AND e.version = 1 AND c.source_ref IS NULL
      AND e.data ? 'source_ref';
CREATE INDEX IF NOT EXISTS cases_by_source_ref ON cases (source_ref) WHERE source_ref IS NOT NULL;
