-- Reverts 0001-leases.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.release_leases(text[], bigint[], boolean);

DROP FUNCTION :PGFENCE_SCHEMA.renew_leases(text[], bigint[], double precision[], boolean);

DROP FUNCTION :PGFENCE_SCHEMA.acquire_leases(text[], text, double precision[], jsonb[]);

DROP FUNCTION :PGFENCE_SCHEMA.is_current(text, bigint);

DROP SEQUENCE :PGFENCE_SCHEMA.fence_tokens;

DROP TABLE :PGFENCE_SCHEMA.leases;
