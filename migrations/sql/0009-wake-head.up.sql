-- pgfence schema (migration 1764130000008_wake_head): one release wakes one waiter.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql, and :PGFENCE_HANDOFF_CHANNEL, the channel of
-- releases addressed to one waiter, as a literal.
--
-- Until now every release of a plain lease sent its key on the released channel, which wakes
-- every waiting PgFence of the key; all but the head of the key's queue (lease_waiters) then
-- asked once, were refused for the waiter ahead of them, and went back to sleep: about 17
-- transactions per grant with 8 processes on one key. Now a release whose key has a plain
-- exclusive caller at the head of its queue sends "<waiter id>:<key>" on the handoff channel
-- instead, and only that waiter asks: the others could not have been granted anyway. Any other
-- queue (a shared or semaphore caller at its head, who may be followed by more that can be
-- granted together, or no queue at all) is announced to everyone, as before. A waiter that
-- leaves the queue announces its key to everyone, so that a release addressed to it while it
-- was leaving is not lost on the next in line. A client of an earlier version, which does not
-- LISTEN on the handoff channel, still gets its grant when it next asks (its poll).

CREATE FUNCTION :PGFENCE_SCHEMA.announce_release(p_key text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_id bigint;
  v_mode text;
  v_permits integer;
BEGIN
  SELECT w.id, w.mode, w.permits INTO v_id, v_mode, v_permits
  FROM :PGFENCE_SCHEMA.lease_waiters w
  WHERE w.key = p_key AND w.expires_at > clock_timestamp()
  ORDER BY w.id
  LIMIT 1;
  IF FOUND AND v_mode = 'exclusive' AND v_permits IS NULL THEN
    PERFORM pg_notify(:PGFENCE_HANDOFF_CHANNEL, v_id::text || ':' || p_key);
  ELSE
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, p_key);
  END IF;
END
$fn$;

-- release_leases (0003's), announcing each release through announce_release.
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
      PERFORM :PGFENCE_SCHEMA.announce_release(v_key);
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
      PERFORM :PGFENCE_SCHEMA.announce_release(v_key);
    END IF;
    key := v_key;
    token := v_token;
    busy := v_busy;
    RETURN NEXT;
  END LOOP;
END
$fn$;

-- leave_lease_queue (0006's), announcing the key to every waiter.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.leave_lease_queue(p_waiter bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_key text;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = p_waiter RETURNING w.key INTO v_key;
  IF FOUND THEN
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
  END IF;
END
$fn$;
