-- depends: 0001_kernel
-- The metrics processors' state: items, where each source partition is read up to, who owns
-- each partition, and the figures per (partition, bureau, day). A processor writes all of it
-- for one batch in one transaction, so the figures and the positions never disagree.

CREATE TABLE IF NOT EXISTS metrics_items (
    key       bytea   PRIMARY KEY,
    partition integer NOT NULL,
    state     bytea   NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_items_by_partition ON metrics_items (partition);

-- The next offset to read of each source partition, and a digest of the record just before
-- it: a log made again (a lost broker refilled) holds another record there.
CREATE TABLE IF NOT EXISTS metrics_positions (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    last_digest bigint,
    PRIMARY KEY (topic, partition)
);

-- One row per (role, partition): the generation of the processor that claimed it last (a
-- write with an older one is refused), and a revision counting its commits (readers fetch
-- what changed since the revision they saw).
CREATE TABLE IF NOT EXISTS metrics_owners (
    role       text    NOT NULL,
    partition  integer NOT NULL,
    generation bigint  NOT NULL,
    rev        bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (role, partition)
);

-- The figures: the records of figures/snapshot.py (one per partition, bureau and day, and a
-- status per partition), each stamped with the revision of the commit that wrote it.
CREATE TABLE IF NOT EXISTS metrics_chunks (
    key       text    PRIMARY KEY,
    partition integer NOT NULL,
    rev       bigint  NOT NULL,
    value     bytea
);
CREATE INDEX IF NOT EXISTS metrics_chunks_by_rev ON metrics_chunks (partition, rev);
