-- Undoes 1764130000009_holder_count: lease_admits and lease_grant as 0006 installed them,
-- acquire_lease_batch and release_lease_holders as 0008 did, no add_group_holders and no holders
-- column.

CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.lease_admits(
  p_key text, p_mode text, p_permits integer, p_waiter bigint, p_now timestamptz,
  OUT blocked boolean, OUT retry_at timestamptz, OUT conflict text, OUT held_permits integer,
  OUT group_live boolean
)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_found boolean;
  v_token bigint;
  v_expires timestamptz;
  v_meta jsonb;
  v_kind text;
  v_count integer;
  v_ahead integer;
BEGIN
  blocked := false;
  group_live := false;
  SELECT l.token, l.expires_at, l.metadata INTO v_token, v_expires, v_meta
  FROM :PGFENCE_SCHEMA.leases l WHERE l.key = p_key;
  v_found := FOUND;
  IF v_found AND v_expires > p_now THEN
    IF v_token <> 0 OR (p_mode = 'exclusive' AND p_permits IS NULL) THEN
      -- A plain (exclusive) lease; or an exclusive caller, who waits for the last holder.
      blocked := true;
      retry_at := v_expires;
      RETURN;
    END IF;
    group_live := true;
    v_kind := v_meta->>'kind';
    IF (p_permits IS NULL) <> (v_kind = 'shared')
       OR (p_permits IS NOT NULL AND (v_meta->>'permits')::integer <> p_permits) THEN
      blocked := true;
      conflict := 'permits';
      held_permits := CASE WHEN v_kind = 'shared' THEN 0 ELSE (v_meta->>'permits')::integer END;
      RETURN;
    END IF;
    IF p_permits IS NOT NULL THEN
      SELECT count(*)::integer, min(h.expires_at) INTO v_count, retry_at
      FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = p_key AND h.expires_at > p_now;
      SELECT count(*)::integer INTO v_ahead FROM :PGFENCE_SCHEMA.lease_waiters w
      WHERE w.key = p_key AND w.expires_at > p_now AND (p_waiter IS NULL OR w.id < p_waiter);
      blocked := v_count + v_ahead >= p_permits;
      -- A permit free but promised to a waiter ahead: woken when that one is served.
      IF v_count < p_permits THEN retry_at := NULL; END IF;
    ELSE
      -- Shared on shared: only an exclusive waiter that came first is in the way.
      blocked := EXISTS (
        SELECT 1 FROM :PGFENCE_SCHEMA.lease_waiters w
        WHERE w.key = p_key AND w.expires_at > p_now AND w.mode = 'exclusive'
          AND (p_waiter IS NULL OR w.id < p_waiter));
      IF blocked THEN retry_at := v_expires; END IF;
    END IF;
  ELSE
    -- Free (or expired): the callers queued before this one go first.
    IF p_mode = 'shared' THEN
      blocked := EXISTS (
        SELECT 1 FROM :PGFENCE_SCHEMA.lease_waiters w
        WHERE w.key = p_key AND w.expires_at > p_now AND w.mode = 'exclusive'
          AND (p_waiter IS NULL OR w.id < p_waiter));
    ELSE
      SELECT count(*)::integer INTO v_ahead FROM :PGFENCE_SCHEMA.lease_waiters w
      WHERE w.key = p_key AND w.expires_at > p_now AND (p_waiter IS NULL OR w.id < p_waiter);
      blocked := v_ahead >= coalesce(p_permits, 1);
    END IF;
    IF blocked OR NOT v_found THEN
      RETURN;
    END IF;
  END IF;
  IF blocked THEN
    RETURN;
  END IF;
  -- An expired row, or a live group row, that someone else has locked (a guarded write, a
  -- release or reap in flight) is busy: it frees up in moments.
  PERFORM 1 FROM :PGFENCE_SCHEMA.leases l WHERE l.key = p_key FOR NO KEY UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    blocked := true;
    retry_at := p_now;
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.lease_grant(
  p_key text, p_owner text, p_token bigint, p_ttl_ms double precision, p_metadata jsonb,
  p_mode text, p_permits integer, p_group_live boolean, p_now timestamptz
) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_expires timestamptz := p_now + p_ttl_ms * interval '1 millisecond';
BEGIN
  IF p_mode = 'exclusive' AND p_permits IS NULL THEN
    INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    VALUES (p_key, p_owner, p_token, p_now, v_expires, p_metadata)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata;
    RETURN v_expires;
  END IF;
  IF p_group_live THEN
    UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = greatest(l.expires_at, v_expires)
    WHERE l.key = p_key AND l.token = 0;
  ELSE
    -- A new group: whatever holder rows the key still has are expired.
    DELETE FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = p_key;
    INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    VALUES (p_key, '', 0, p_now, v_expires,
            CASE WHEN p_permits IS NULL THEN jsonb_build_object('kind', 'shared')
                 ELSE jsonb_build_object('kind', 'semaphore', 'permits', p_permits) END)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = 0, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata;
  END IF;
  INSERT INTO :PGFENCE_SCHEMA.lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
  VALUES (p_key, p_token, p_owner, p_mode, p_now, v_expires, p_metadata);
  RETURN v_expires;
END
$fn$;

CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.acquire_lease_batch(
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
  v_group_keys text[] := '{}';
  -- The last key granted to a shared or semaphore caller, and how it was asked for: a later
  -- attempt of that key, asked for the same way and with no place in the queue, is decided
  -- from what this statement already knows (see below) instead of by lease_admits again.
  v_last_key text;
  v_last_mode text;
  v_last_permits integer;
  v_taken integer; -- the semaphore's live holders plus its live waiters, once counted
  v_fast boolean;
  v_group_expires timestamptz[] := '{}';
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
    -- Fast path: the previous attempt of this key was granted just as asked now, and nothing
    -- else touched the key since (this statement holds its lock). Shared on shared: nothing new
    -- can be in the way. A semaphore: granted while its holders and waiters (every live waiter
    -- is ahead of a caller without a place) leave a permit free. Otherwise lease_admits decides.
    v_fast := v_key = v_last_key AND v_mode = v_last_mode AND v_waiter IS NULL
              AND v_permits IS NOT DISTINCT FROM v_last_permits;
    IF v_fast AND v_permits IS NOT NULL THEN
      IF v_taken IS NULL THEN
        SELECT (SELECT count(*)::integer FROM :PGFENCE_SCHEMA.lease_holders h
                WHERE h.key = v_key AND h.expires_at > v_now)
             + (SELECT count(*)::integer FROM :PGFENCE_SCHEMA.lease_waiters w
                WHERE w.key = v_key AND w.expires_at > v_now)
        INTO v_taken;
      END IF;
      v_fast := v_taken < v_permits;
    END IF;
    IF v_fast THEN
      SELECT false AS blocked, NULL::timestamptz AS retry_at, NULL::text AS conflict,
             NULL::integer AS held_permits, true AS group_live
      INTO v_admit;
    ELSE
      v_last_key := NULL;
      SELECT * INTO v_admit FROM :PGFENCE_SCHEMA.lease_admits(v_key, v_mode, v_permits, v_waiter, v_now);
    END IF;
    IF NOT v_admit.blocked THEN
      -- Only a grant to a caller without a place in the queue says that no waiter is in the
      -- way (lease_admits counts only the waiters ahead of a caller who has one).
      IF v_waiter IS NULL AND (v_mode = 'shared' OR v_permits IS NOT NULL) THEN
        IF v_key IS DISTINCT FROM v_last_key THEN
          v_taken := NULL;
        ELSIF v_taken IS NOT NULL THEN
          v_taken := v_taken + 1;
        END IF;
        v_last_key := v_key;
        v_last_mode := v_mode;
        v_last_permits := v_permits;
      END IF;
      IF NOT v_durable THEN
        PERFORM set_config('synchronous_commit', 'on', true);
        v_durable := true;
      END IF;
      -- Drawn under the key's serialisation lock (guarantee 2).
      v_token := :PGFENCE_SCHEMA.next_token();
      IF v_admit.group_live THEN
        -- Another holder of a live group: lease_grant's work, but the group row's expiry is
        -- raised once per key, below, not once per holder (it is already live, and the rows
        -- are locked: nobody sees it before this transaction commits).
        expires_at := v_now + p_ttl_ms[i] * interval '1 millisecond';
        INSERT INTO :PGFENCE_SCHEMA.lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
        VALUES (v_key, v_token, p_owner, v_mode, v_now, expires_at, p_metadata[i]);
        v_group_keys := v_group_keys || v_key;
        v_group_expires := v_group_expires || expires_at;
      ELSE
        expires_at := :PGFENCE_SCHEMA.lease_grant(v_key, p_owner, v_token, p_ttl_ms[i], p_metadata[i],
                                                  v_mode, v_permits, false, v_now);
      END IF;
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
  UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = greatest(l.expires_at, g.latest)
  FROM (SELECT u.k, max(u.e) AS latest FROM unnest(v_group_keys, v_group_expires) AS u(k, e)
        GROUP BY u.k) AS g
  WHERE l.key = g.k AND l.token = 0;
END
$fn$;

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
    RETURNING h.key AS k, h.token AS t
  )
  SELECT array_agg(g.k), array_agg(g.t) INTO v_keys, v_tokens FROM gone g;
  FOR v_key IN SELECT DISTINCT u.k FROM unnest(v_keys) AS u(k) LOOP
    SELECT max(h.expires_at) INTO v_latest FROM :PGFENCE_SCHEMA.lease_holders h
    WHERE h.key = v_key AND h.expires_at > v_now;
    IF v_latest IS NULL THEN
      DELETE FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0;
    ELSE
      UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = v_latest
      WHERE l.key = v_key AND l.token = 0 AND l.expires_at > v_now;
    END IF;
    PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
  END LOOP;
  RETURN QUERY SELECT u.k, u.t FROM unnest(v_keys, v_tokens) AS u(k, t);
END
$fn$;

DROP FUNCTION :PGFENCE_SCHEMA.add_group_holders(text[], bigint[], text, text[], timestamptz, timestamptz[], jsonb[]);

ALTER TABLE :PGFENCE_SCHEMA.leases DROP COLUMN holders;
