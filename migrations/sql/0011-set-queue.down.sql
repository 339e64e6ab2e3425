-- Undoes 1764130000010_set_queue: leaseAll waits outside the keys' queues again.
DROP FUNCTION :PGFENCE_SCHEMA.acquire_lease_set(
  text[], text, double precision, jsonb, text, bigint[], double precision
);
