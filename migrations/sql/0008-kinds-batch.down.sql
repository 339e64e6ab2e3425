-- Reverts 0008-kinds-batch.up.sql.
DROP FUNCTION :PGFENCE_SCHEMA.acquire_lease_batch(
  text[], text, double precision[], jsonb[], text[], integer[], bigint[], double precision[]
);

-- release_lease_holders as 0006-lease-kinds.up.sql installs it.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.release_lease_holders(p_keys text[], p_tokens bigint[])
RETURNS TABLE (key text, token bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_term record;
  v_latest timestamptz;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR v_term IN SELECT u.k, u.t FROM unnest(p_keys, p_tokens) AS u(k, t) LOOP
    DELETE FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = v_term.k AND h.token = v_term.t;
    CONTINUE WHEN NOT FOUND;
    SELECT max(h.expires_at) INTO v_latest FROM :PGFENCE_SCHEMA.lease_holders h
    WHERE h.key = v_term.k AND h.expires_at > v_now;
    IF v_latest IS NULL THEN
      DELETE FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_term.k AND l.token = 0;
    ELSE
      UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = v_latest
      WHERE l.key = v_term.k AND l.token = 0 AND l.expires_at > v_now;
    END IF;
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_term.k);
    key := v_term.k;
    token := v_term.t;
    RETURN NEXT;
  END LOOP;
END
$fn$;
