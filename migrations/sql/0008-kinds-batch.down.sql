-- Reverts 0008-kinds-batch.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.acquire_lease_batch(
  text[], text, double precision[], jsonb[], text[], integer[], bigint[], double precision[]
);
