-- depends: 2001_metrics_state
-- Names of stations and beats from intake's unit register (intake.unit.events.v1), kept by
-- jingmin_metrics.adapters.unit_names with eventkit.unitnames.apply; the boards and the JSON
-- API show them beside the codes. Columns as eventkit.unitnames expects.
CREATE TABLE unit_names (
    code     text PRIMARY KEY,
    bureau   text NOT NULL,
    station  text NOT NULL,
    kind     text NOT NULL,
    name     text,
    retired  boolean NOT NULL DEFAULT false,
    version  bigint NOT NULL
);
CREATE INDEX unit_names_bureau ON unit_names (bureau);
