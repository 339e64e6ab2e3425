-- Reverts 0004-claim-batch.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.xact_release(text[], bigint[], text);
DROP FUNCTION :PGFENCE_SCHEMA.claim_candidates(text[], text, double precision);
