-- Reverts 0006-lease-kinds.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.release_lease_holders(text[], bigint[]);

DROP FUNCTION :PGFENCE_SCHEMA.renew_lease_holders(text[], bigint[], double precision[]);

DROP FUNCTION :PGFENCE_SCHEMA.acquire_lease_set(text[], text, double precision, jsonb, text);

DROP FUNCTION :PGFENCE_SCHEMA.leave_lease_queue(bigint);

DROP FUNCTION :PGFENCE_SCHEMA.acquire_lease(text, text, double precision, jsonb, text, integer, bigint, double precision);

DROP FUNCTION :PGFENCE_SCHEMA.lease_grant(text, text, bigint, double precision, jsonb, text, integer, boolean, timestamptz);

DROP FUNCTION :PGFENCE_SCHEMA.lease_admits(text, text, integer, bigint, timestamptz);

-- Back to version 1's is_current: plain leases only.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.is_current(p_key text, p_token bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM :PGFENCE_SCHEMA.leases l
    WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
    FOR SHARE
  )
$fn$;

DELETE FROM :PGFENCE_SCHEMA.leases WHERE token = 0;

DROP TABLE :PGFENCE_SCHEMA.lease_waiters;

DROP TABLE :PGFENCE_SCHEMA.lease_holders;
