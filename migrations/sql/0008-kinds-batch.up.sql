-- pgfence schema (migration 1764130000007_kinds_batch): many attempts of acquire_lease in one
-- statement, so that callers of one PgFence share one transaction and one commit, as plain
-- leases do through acquire_leases.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- acquire_lease_batch(keys, owner, ttls, metadata, modes, permits, waiters, queue ttls): request
-- i is acquire_lease(p_keys[i], p_owner, p_ttl_ms[i], p_metadata[i], p_modes[i], p_permits[i],
-- p_waiters[i], p_queue_ttl_ms[i]), with the same answer, in a row tagged with its ordinal i.
-- - The serialisation locks of every key are taken first, in one fixed order: by the lock
--   (hashtext(key)) ascending, the order of acquire_leases, acquire_lease_set,
--   renew_lease_holders and release_lease_holders (claim_leases only tries its locks), so no two
--   of these statements deadlock on them.
-- - Then the requests are answered one at a time in the order given (the callers' order of
--   arrival), each seeing what the earlier ones did: a grant counts against a semaphore's
--   permits, and a caller that has to wait takes its place in the key's queue before a later
--   caller of the same batch, who then waits behind it. Every grant goes through lease_admits
--   and lease_grant, as in acquire_lease, with a token drawn under the key's lock (guarantee 11).
-- - The transaction commits synchronously when something was granted, and asynchronously when
--   nothing was (only queue places changed, which a crash may lose harmlessly).
CREATE FUNCTION :PGFENCE_SCHEMA.acquire_lease_batch(
  p_keys text[], p_owner text, p_ttl_ms double precision[], p_metadata jsonb[],
  p_modes text[], p_permits integer[], p_waiters bigint[], p_queue_ttl_ms double precision[]
) RETURNS TABLE (
  ord integer, acquired boolean, token bigint, acquired_at timestamptz, expires_at timestamptz,
  db_now timestamptz, waiter bigint, conflict text, held_permits integer
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  n integer := cardinality(p_keys);
  v_lock integer;
  v_now timestamptz;
  v_admit record;
  v_token bigint;
  v_key text;
  v_mode text;
  v_permits integer;
  v_waiter bigint;
  v_queue_ttl double precision;
  v_durable boolean := false;
  i integer;
BEGIN
  IF p_keys IS NULL OR p_owner IS NULL OR p_ttl_ms IS NULL OR p_modes IS NULL
     OR cardinality(p_ttl_ms) <> n OR cardinality(p_modes) <> n
     OR (p_metadata IS NOT NULL AND cardinality(p_metadata) <> n)
     OR (p_permits IS NOT NULL AND cardinality(p_permits) <> n)
     OR (p_waiters IS NOT NULL AND cardinality(p_waiters) <> n)
     OR (p_queue_ttl_ms IS NOT NULL AND cardinality(p_queue_ttl_ms) <> n) THEN
    RAISE EXCEPTION 'acquire_lease_batch: keys, ttls, metadata, modes, permits, waiters and queue ttls must be arrays of one length'
      USING ERRCODE = '22023';
  END IF;
  FOR i IN 1 .. n LOOP
    IF p_keys[i] IS NULL OR NOT p_ttl_ms[i] > 0
       OR p_modes[i] IS NULL OR p_modes[i] NOT IN ('shared', 'exclusive')
       OR (p_permits[i] IS NOT NULL AND (p_permits[i] < 1 OR p_modes[i] <> 'exclusive')) THEN
      RAISE EXCEPTION 'acquire_lease_batch: a key, an owner, a positive ttl, a mode and (for a semaphore) permits of at least 1 are required'
        USING ERRCODE = '22023';
    END IF;
  END LOOP;
  -- Turned on once, by the first grant, and never off again in this transaction: the setting in
  -- force at commit decides.
  PERFORM set_config('synchronous_commit', 'off', true);
  -- By the lock taken, not by key: keys whose hashtext collide share a lock.
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR i IN 1 .. n LOOP
    v_key := p_keys[i];
    v_mode := p_modes[i];
    v_permits := p_permits[i];
    v_waiter := p_waiters[i];
    v_queue_ttl := p_queue_ttl_ms[i];
    ord := i;
    db_now := v_now;
    acquired := false;
    token := NULL;
    acquired_at := NULL;
    expires_at := NULL;
    waiter := v_waiter;
    conflict := NULL;
    held_permits := NULL;
    SELECT * INTO v_admit FROM :PGFENCE_SCHEMA.lease_admits(v_key, v_mode, v_permits, v_waiter, v_now);
    IF NOT v_admit.blocked THEN
      IF NOT v_durable THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        v_durable := true;
      END IF;
      -- Drawn under the key's serialisation lock (guarantee 2).
      v_token := :PGFENCE_SCHEMA.next_token();
      expires_at := :PGFENCE_SCHEMA.lease_grant(v_key, p_owner, v_token, p_ttl_ms[i], p_metadata[i],
                                                v_mode, v_permits, v_admit.group_live, v_now);
      IF v_waiter IS NOT NULL THEN
        DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = v_waiter;
      END IF;
      acquired := true;
      token := v_token;
      acquired_at := v_now;
      waiter := NULL;
      RETURN NEXT;
      CONTINUE;
    END IF;
    conflict := v_admit.conflict;
    held_permits := v_admit.held_permits;
    expires_at := v_admit.retry_at;
    IF conflict IS NOT NULL THEN
      IF v_waiter IS NOT NULL THEN
        DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = v_waiter;
      END IF;
      waiter := NULL;
    ELSIF v_queue_ttl IS NOT NULL THEN
      IF v_waiter IS NOT NULL THEN
        UPDATE :PGFENCE_SCHEMA.lease_waiters w
        SET expires_at = v_now + v_queue_ttl * interval '1 millisecond'
        WHERE w.id = v_waiter AND w.key = v_key;
      END IF;
      IF v_waiter IS NULL OR NOT FOUND THEN
        -- First wait, or a place lost for not asking in time: to the back of the queue.
        INSERT INTO :PGFENCE_SCHEMA.lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
        VALUES (v_key, p_owner, v_mode, v_permits, v_now,
                v_now + v_queue_ttl * interval '1 millisecond')
        RETURNING id INTO waiter;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;
