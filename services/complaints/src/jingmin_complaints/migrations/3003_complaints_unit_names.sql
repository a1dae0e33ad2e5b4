-- depends: 3002_complaints_case_parties
-- Names of stations and beats from intake's unit register (intake.unit.events.v1), kept by
-- jingmin_complaints.adapters.unit_names with eventkit.unitnames.apply; the public complaint
-- form offers a county's stations by name. Columns as eventkit.unitnames expects.
CREATE TABLE IF NOT EXISTS unit_names (
    code     text PRIMARY KEY,
    bureau   text NOT NULL,
    station  text NOT NULL,
    kind     text NOT NULL,
    name     text,
    retired  boolean NOT NULL DEFAULT false,
    version  bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS unit_names_bureau ON unit_names (bureau);
