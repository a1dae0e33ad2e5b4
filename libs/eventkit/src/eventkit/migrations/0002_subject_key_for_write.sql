-- depends: 0001_kernel
-- One round trip for the hot path of every write that carries personal data: return the
-- person's wrapped key, creating it from the candidate if needed; NULL if they were erased.
-- Volatile PL/pgSQL takes a fresh snapshot per statement, so after waiting on the lock the
-- final SELECT sees a key a concurrent writer committed: every writer agrees on one key.
CREATE OR REPLACE FUNCTION subject_key_for_write(p_subject text, p_candidate bytea)
RETURNS bytea AS $$
DECLARE
    k bytea;
BEGIN
    SELECT wrapped_key INTO k FROM subject_keys WHERE subject_id = p_subject;
    IF k IS NOT NULL THEN
        RETURN k;
    END IF;
    -- Creation and erasure of one subject take the same lock, so an erasure cannot slip
    -- between the "not erased" check and the insert and leave a fresh key behind.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_subject, 7406));
    IF EXISTS (SELECT 1 FROM subject_erasures WHERE subject_id = p_subject) THEN
        RETURN NULL;
    END IF;
    INSERT INTO subject_keys (subject_id, wrapped_key) VALUES (p_subject, p_candidate)
        ON CONFLICT (subject_id) DO NOTHING;
    SELECT wrapped_key INTO k FROM subject_keys WHERE subject_id = p_subject;
    RETURN k;
END $$ LANGUAGE plpgsql VOLATILE;
