-- depends: 0004_event_chain 0005_contact_reads
-- A write that encrypted under a key it did not ask the store for first (a fresh candidate
-- for a new person, or a cached key) claims that key in the statement that appends its
-- events: the statement fails unless the key is, or now becomes, the person's stored key.
-- So a new person's first case costs one round trip, not two. An erased person's claim
-- fails too (subject_key_for_write gives NULL), and the writer asks again the slow way.
CREATE OR REPLACE FUNCTION subject_key_claim(p_subject text, p_wrapped bytea)
RETURNS boolean AS $$
BEGIN
    IF subject_key_for_write(p_subject, p_wrapped) IS DISTINCT FROM p_wrapped THEN
        RAISE EXCEPTION 'the data key of this subject is not the one claimed'
            USING ERRCODE = 'JM001';
    END IF;
    RETURN true;
END $$ LANGUAGE plpgsql VOLATILE;
