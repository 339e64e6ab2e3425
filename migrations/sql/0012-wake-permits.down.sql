-- Undoes 1764130000011_wake_permits: release_lease_holders as 0010 installed it, which
-- announces every release to everyone, and no announce_permits.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.release_lease_holders(p_keys text[], p_tokens bigint[])
RETURNS TABLE (key text, token bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_key text;
  v_latest timestamptz;
  v_keys text[];
  v_tokens bigint[];
  v_live text[];
  v_gone integer;
  v_holders integer;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  WITH gone AS (
    DELETE FROM :PGFENCE_SCHEMA.lease_holders h
    USING unnest(p_keys, p_tokens) AS u(k, t)
    WHERE h.key = u.k AND h.token = u.t
    RETURNING h.key AS k, h.token AS t, h.expires_at > v_now AS live
  )
  SELECT array_agg(g.k), array_agg(g.t), array_agg(g.k) FILTER (WHERE g.live)
  INTO v_keys, v_tokens, v_live FROM gone g;
  FOR v_key IN SELECT DISTINCT u.k FROM unnest(v_keys) AS u(k) LOOP
    SELECT count(*)::integer INTO v_gone FROM unnest(v_live) AS u(k) WHERE u.k = v_key;
    SELECT l.holders INTO v_holders FROM :PGFENCE_SCHEMA.leases l
    WHERE l.key = v_key AND l.token = 0;
    IF v_holders IS NOT NULL AND v_holders - v_gone <= 0 THEN
      -- The count bounds the live holders from above: none is left.
      DELETE FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0;
    ELSIF v_holders IS NOT NULL THEN
      -- Some may be left. The group's expiry stays where it is, at or above every remaining
      -- holder's (finding the latest of them would read every holder row the key ever had
      -- until VACUUM: one hot key leaves thousands of dead index entries a second). If the
      -- remaining holders crash, the key frees up at the latest expiry its group had, at most
      -- one TTL later than the latest of theirs.
      UPDATE :PGFENCE_SCHEMA.leases AS l SET holders = v_holders - v_gone
      WHERE l.key = v_key AND l.token = 0;
    ELSE
      -- A group from before counts were kept: as before, from its holder rows.
      SELECT max(h.expires_at), count(*)::integer INTO v_latest, v_holders
      FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = v_key AND h.expires_at > v_now;
      IF v_latest IS NULL THEN
        DELETE FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0;
      ELSE
        UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = v_latest, holders = v_holders
        WHERE l.key = v_key AND l.token = 0 AND l.expires_at > v_now;
      END IF;
    END IF;
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
  END LOOP;
  RETURN QUERY SELECT u.k, u.t FROM unnest(v_keys, v_tokens) AS u(k, t);
END
$fn$;

DROP FUNCTION :PGFENCE_SCHEMA.announce_permits(text, integer, integer);
