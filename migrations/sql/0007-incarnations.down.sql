-- Reverts 0007-incarnations.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.advisory_grant_delay(double precision);

DROP FUNCTION :PGFENCE_SCHEMA.server_incarnation();

DROP TABLE :PGFENCE_SCHEMA.incarnation_seen;

DROP TABLE :PGFENCE_SCHEMA.incarnations;
