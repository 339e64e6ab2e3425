-- Undoes 1764130000008_wake_head: release_leases as 0003 installed it, leave_lease_queue as
-- 0006 did, and no announce_release.

-- Release leases, each scoped to its own term, and wake waiters through NOTIFY (sent at
-- commit); otherwise as version 1 (not durable, p_skip_locked reports busy rows).
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.release_leases(
  p_keys text[], p_tokens bigint[], p_owner text, p_skip_locked boolean DEFAULT false
)
RETURNS TABLE (key text, token bigint, busy boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
  v_key text;
  v_token bigint;
  v_busy boolean;
BEGIN
  IF p_keys IS NULL OR p_tokens IS NULL OR p_owner IS NULL
     OR cardinality(p_tokens) <> cardinality(p_keys) THEN
    RAISE EXCEPTION 'release_leases: keys and tokens must be arrays of one length, with an owner'
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  IF cardinality(p_keys) > 32 THEN
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
  END IF;
  IF NOT coalesce(p_skip_locked, false) THEN
    FOR v_key, v_token IN
      WITH locked AS (
        SELECT l.key, l.token FROM unnest(p_keys, p_tokens) AS u(k, t)
        JOIN :PGFENCE_SCHEMA.leases l ON l.key = u.k
        WHERE l.token = u.t AND l.owner = p_owner
        FOR UPDATE OF l
      )
      DELETE FROM :PGFENCE_SCHEMA.leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    LOOP
      PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
      key := v_key;
      token := v_token;
      busy := false;
      RETURN NEXT;
    END LOOP;
    RETURN;
  END IF;
  FOR v_key, v_token, v_busy IN
    WITH wanted AS (
      SELECT u.k, u.t FROM unnest(p_keys, p_tokens) AS u(k, t)
    ),
    locked AS (
      SELECT l.key, l.token FROM wanted w
      JOIN :PGFENCE_SCHEMA.leases l ON l.key = w.k
      WHERE l.token = w.t AND l.owner = p_owner
      FOR UPDATE OF l SKIP LOCKED
    ),
    gone AS (
      DELETE FROM :PGFENCE_SCHEMA.leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    )
    SELECT g.key, g.token, false FROM gone g
    UNION ALL
    -- Busy: a term of this owner that someone else has locked.
    SELECT l.key, l.token, true
    FROM (SELECT w.k, w.t FROM wanted w EXCEPT ALL SELECT x.key, x.token FROM locked x) AS d
    JOIN :PGFENCE_SCHEMA.leases l ON l.key = d.k
    WHERE l.token = d.t AND l.owner = p_owner
  LOOP
    IF NOT v_busy THEN
      PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
    END IF;
    key := v_key;
    token := v_token;
    busy := v_busy;
    RETURN NEXT;
  END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.leave_lease_queue(p_waiter bigint) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  SELECT set_config('synchronous_commit', 'off', true);
  DELETE FROM :PGFENCE_SCHEMA.lease_waiters WHERE id = p_waiter;
$fn$;

DROP FUNCTION :PGFENCE_SCHEMA.announce_release(text);
