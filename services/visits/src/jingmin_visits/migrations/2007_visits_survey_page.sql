-- depends: 2006_visits_callback_triggers 2005_visits_survey_waves
-- The wave questionnaire by SMS link: a link answers either a callback or a sampled unit of a
-- survey wave (never both); and the opt-outs' audit trail lives in `opt_out` streams.

ALTER TABLE survey_tokens ALTER COLUMN callback_id DROP NOT NULL;
ALTER TABLE survey_tokens ADD COLUMN IF NOT EXISTS wave_id text;
ALTER TABLE survey_tokens ADD COLUMN IF NOT EXISTS unit_id text;
ALTER TABLE survey_tokens DROP CONSTRAINT IF EXISTS survey_tokens_one_target;
ALTER TABLE survey_tokens ADD CONSTRAINT survey_tokens_one_target CHECK (
    (callback_id IS NOT NULL AND wave_id IS NULL AND unit_id IS NULL)
    OR (callback_id IS NULL AND wave_id IS NOT NULL AND unit_id IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS survey_tokens_by_unit ON survey_tokens (wave_id, unit_id)
    WHERE wave_id IS NOT NULL;
