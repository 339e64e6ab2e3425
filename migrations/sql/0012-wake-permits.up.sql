-- pgfence schema (migration 1764130000011_wake_permits): a released permit wakes the waiter
-- it admits.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0009-wake-head.up.sql.
--
-- Until now a release of a semaphore or shared holder sent its key on the released channel,
-- which wakes every waiting PgFence of the key: with 12 PgFences on a semaphore of 3 that cost
-- 5.3 attempts per grant, most of them refused for a waiter ahead. A semaphore admits the
-- waiters at the head of its queue while permits are free, counting every live waiter ahead
-- whatever its kind (lease_admits), so a release now addresses "<waiter id>:<key>" on the
-- handoff channel to each of the first waiters, as many as there are free permits, when they
-- are all semaphore waiters. The free permits come from the group's holder count, an upper
-- bound of its live holders (it also counts holders that expired unreleased); when that says
-- fewer are free than there are waiters, the live holders are counted, so that no waiter that
-- could go is left asleep. Any other waiter among the first (an exclusive caller, a set's
-- place, a shared caller) and no queue at all are announced to everyone, as before. On a shared
-- key, an exclusive caller at the head is addressed alone, as 0009 does for plain leases:
-- nobody behind it can go before it.

CREATE FUNCTION :PGFENCE_SCHEMA.announce_permits(
  p_key text, p_permits integer, p_left integer
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_free integer;
  v_waiting integer;
  v_waiter record;
  v_everyone boolean := true;
BEGIN
  IF p_permits IS NOT NULL THEN
    v_free := greatest(p_permits - p_left, 0);
    SELECT count(*)::integer INTO v_waiting FROM (
      SELECT 1 FROM :PGFENCE_SCHEMA.lease_waiters w
      WHERE w.key = p_key AND w.expires_at > v_now LIMIT v_free + 1) AS x;
    IF v_waiting > v_free THEN
      SELECT greatest(p_permits - count(*)::integer, 0) INTO v_free
      FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = p_key AND h.expires_at > v_now;
    END IF;
    FOR v_waiter IN
      SELECT w.id, w.permits FROM :PGFENCE_SCHEMA.lease_waiters w
      WHERE w.key = p_key AND w.expires_at > v_now
      ORDER BY w.id
      LIMIT v_free
    LOOP
      IF v_waiter.permits IS NULL THEN
        -- Not a semaphore waiter (it waits for the last holder, or is refused): everyone asks.
        v_everyone := true;
        EXIT;
      END IF;
      PERFORM pg_notify(:PGFENCE_HANDOFF_CHANNEL, v_waiter.id::text || ':' || p_key);
      v_everyone := false;
    END LOOP;
  ELSE
    SELECT w.id, w.mode INTO v_waiter FROM :PGFENCE_SCHEMA.lease_waiters w
    WHERE w.key = p_key AND w.expires_at > v_now
    ORDER BY w.id
    LIMIT 1;
    IF FOUND AND v_waiter.mode = 'exclusive' THEN
      PERFORM pg_notify(:PGFENCE_HANDOFF_CHANNEL, v_waiter.id::text || ':' || p_key);
      v_everyone := false;
    END IF;
  END IF;
  -- Also when nobody waits: whoever is not in the queue (a claimer, an observer) may care.
  IF v_everyone THEN
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, p_key);
  END IF;
END
$fn$;

-- release_lease_holders (0010's), announcing each key through announce_permits.
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
  v_permits integer;
  v_left integer;
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
    SELECT l.holders, (l.metadata->>'permits')::integer INTO v_holders, v_permits
    FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0;
    v_left := greatest(v_holders - v_gone, 0);
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
      v_left := coalesce(v_holders, 0);
      IF v_latest IS NULL THEN
        DELETE FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0;
      ELSE
        UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = v_latest, holders = v_holders
        WHERE l.key = v_key AND l.token = 0 AND l.expires_at > v_now;
      END IF;
    END IF;
    -- A semaphore's free permits go to the waiters at the head of its queue (announce_permits).
    PERFORM :PGFENCE_SCHEMA.announce_permits(v_key, v_permits, v_left);
  END LOOP;
  RETURN QUERY SELECT u.k, u.t FROM unnest(v_keys, v_tokens) AS u(k, t);
END
$fn$;
