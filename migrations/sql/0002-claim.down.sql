-- Reverts 0002-claim.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.claim_leases(text[], text, double precision, integer);
