-- pgfence schema (migration 1764130000009_holder_count): a shared or semaphore key's group row
-- counts its holders, so that granting and releasing them does not read the key's holder rows.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- Why: one hot key inserts and deletes a holder row per grant, each with a new token, so its
-- entries in lease_holders' primary key (key, token) pile up dead until VACUUM, and every
-- statement that read "the key's live holders" walked all of them. A semaphore of 16 permits
-- at 16 callers ran at 0.41x a plain lease's rate, 0.97x with a VACUUM every half second.
--
-- leases.holders, on group rows (token 0) only: how many holder rows were added to the group
-- and not released while live. It is an upper bound of the group's live holders, never below:
-- - every holder row is added through lease_grant or acquire_lease_batch, which count it,
--   under the key's serialisation lock, in the transaction that adds the row;
-- - a release takes a holder off the count only if the holder was still live; one that had
--   expired (and the reaper's deletions, which are all of expired holders) stay counted;
-- - a new group starts at 1, and only when the old one is dead, whose holders then have all
--   expired (a group's expiry is never below a live holder's).
-- So a count below the permits admits without reading the holders, a count of 0 left by a
-- release deletes the group row, and only a count at or above the permits (a full semaphore,
-- or one whose holders expired unreleased) reads the holder rows, as before. NULL: a group
-- from before this migration whose rows were not counted (see below), read as before.
ALTER TABLE :PGFENCE_SCHEMA.leases ADD COLUMN holders integer;

-- Groups that exist now: every holder row counts (an upper bound, as above).
UPDATE :PGFENCE_SCHEMA.leases AS l
SET holders = (SELECT count(*)::integer FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = l.key)
WHERE l.token = 0;

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
  v_holders integer;
BEGIN
  blocked := false;
  group_live := false;
  SELECT l.token, l.expires_at, l.metadata, l.holders INTO v_token, v_expires, v_meta, v_holders
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
      SELECT count(*)::integer INTO v_ahead FROM :PGFENCE_SCHEMA.lease_waiters w
      WHERE w.key = p_key AND w.expires_at > p_now AND (p_waiter IS NULL OR w.id < p_waiter);
      -- The group row's count bounds its live holders from above (see the header): below the
      -- permits, there is room without reading the holders.
      IF v_holders IS NULL OR v_holders + v_ahead >= p_permits THEN
        SELECT count(*)::integer, min(h.expires_at) INTO v_count, retry_at
        FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = p_key AND h.expires_at > p_now;
        blocked := v_count + v_ahead >= p_permits;
        -- A permit free but promised to a waiter ahead: woken when that one is served.
        IF v_count < p_permits THEN retry_at := NULL; END IF;
      END IF;
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
  v_old_token bigint;
  v_old_holders integer;
BEGIN
  IF p_mode = 'exclusive' AND p_permits IS NULL THEN
    INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    VALUES (p_key, p_owner, p_token, p_now, v_expires, p_metadata)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata, holders = NULL;
    RETURN v_expires;
  END IF;
  IF p_group_live THEN
    UPDATE :PGFENCE_SCHEMA.leases AS l
    SET expires_at = greatest(l.expires_at, v_expires), holders = l.holders + 1
    WHERE l.key = p_key AND l.token = 0;
  ELSE
    -- A new group. Holder rows the key still has are expired (a group dies only after its
    -- holders). Those of an expired group row that still counts some go now; with no row, or
    -- a row counting none, there are none to look for (stragglers of a group that a plain lease
    -- took over, or the reaper took in part, are expired and go with the reaper).
    SELECT l.token, l.holders INTO v_old_token, v_old_holders
    FROM :PGFENCE_SCHEMA.leases l WHERE l.key = p_key;
    IF FOUND AND v_old_token = 0 AND v_old_holders IS DISTINCT FROM 0 THEN
      DELETE FROM :PGFENCE_SCHEMA.lease_holders h WHERE h.key = p_key AND h.expires_at <= p_now;
    END IF;
    INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata, holders)
    VALUES (p_key, '', 0, p_now, v_expires,
            CASE WHEN p_permits IS NULL THEN jsonb_build_object('kind', 'shared')
                 ELSE jsonb_build_object('kind', 'semaphore', 'permits', p_permits) END,
            1)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = 0, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata, holders = 1;
  END IF;
  INSERT INTO :PGFENCE_SCHEMA.lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
  VALUES (p_key, p_token, p_owner, p_mode, p_now, v_expires, p_metadata);
  RETURN v_expires;
END
$fn$;

-- The holders one acquire_lease_batch granted in live groups: their rows in one INSERT, and
-- each group row's expiry and count raised once per key. The caller holds the keys'
-- serialisation locks and drew the tokens under them.
CREATE FUNCTION :PGFENCE_SCHEMA.add_group_holders(
  p_keys text[], p_tokens bigint[], p_owner text, p_modes text[], p_now timestamptz,
  p_expires timestamptz[], p_metadata jsonb[]
) RETURNS void
-- PL/pgSQL, not SQL: its statements' plans are kept for the session, not made on every call.
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  INSERT INTO :PGFENCE_SCHEMA.lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
  SELECT u.k, u.t, p_owner, u.m, p_now, u.e, u.md
  FROM unnest(p_keys, p_tokens, p_modes, p_expires, p_metadata) AS u(k, t, m, e, md);
  UPDATE :PGFENCE_SCHEMA.leases AS l
  SET expires_at = greatest(l.expires_at, g.latest), holders = l.holders + g.n
  FROM (SELECT u.k, max(u.e) AS latest, count(*)::integer AS n
        FROM unnest(p_keys, p_expires) AS u(k, e) GROUP BY u.k) AS g
  WHERE l.key = g.k AND l.token = 0;
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
  v_fast_admit record;
  v_group_expires timestamptz[] := '{}';
  v_group_tokens bigint[] := '{}';
  v_group_modes text[] := '{}';
  v_group_metadata jsonb[] := '{}';
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
  -- What lease_admits would answer on the fast path (below): not blocked, a live group.
  SELECT false AS blocked, NULL::timestamptz AS retry_at, NULL::text AS conflict,
         NULL::integer AS held_permits, true AS group_live
  INTO v_fast_admit;
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
        -- The group row's count (an upper bound of its live holders) plus this statement's
        -- grants not yet added to it; the holders are read only for a group counted before
        -- counts were kept.
        SELECT coalesce(
                 (SELECT l.holders FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key AND l.token = 0)
                 + (SELECT count(*)::integer FROM unnest(v_group_keys) AS g(k) WHERE g.k = v_key),
                 (SELECT count(*)::integer FROM :PGFENCE_SCHEMA.lease_holders h
                  WHERE h.key = v_key AND h.expires_at > v_now))
             + (SELECT count(*)::integer FROM :PGFENCE_SCHEMA.lease_waiters w
                WHERE w.key = v_key AND w.expires_at > v_now)
        INTO v_taken;
      END IF;
      v_fast := v_taken < v_permits;
    END IF;
    IF v_fast THEN
      v_admit := v_fast_admit;
    ELSE
      v_last_key := NULL;
      IF v_key = ANY (v_group_keys) THEN
        -- lease_admits reads the key's holders and its group row's count: this statement's
        -- grants to it go in first.
        PERFORM :PGFENCE_SCHEMA.add_group_holders(v_group_keys, v_group_tokens, p_owner,
          v_group_modes, v_now, v_group_expires, v_group_metadata);
        v_group_keys := '{}';
        v_group_tokens := '{}';
        v_group_modes := '{}';
        v_group_expires := '{}';
        v_group_metadata := '{}';
      END IF;
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
        -- Another holder of a live group: lease_grant's work, but the holder rows go in and the
        -- group row's expiry and count are raised once, at the end (add_group_holders), not
        -- once per holder: the group is live, and the rows are locked, so nobody sees the
        -- difference before this transaction commits.
        expires_at := v_now + p_ttl_ms[i] * interval '1 millisecond';
        v_group_keys := array_append(v_group_keys, v_key);
        v_group_tokens := array_append(v_group_tokens, v_token);
        v_group_modes := array_append(v_group_modes, v_mode);
        v_group_expires := array_append(v_group_expires, expires_at);
        v_group_metadata := array_append(v_group_metadata, p_metadata[i]);
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
  IF cardinality(v_group_keys) > 0 THEN
    PERFORM :PGFENCE_SCHEMA.add_group_holders(v_group_keys, v_group_tokens, p_owner,
      v_group_modes, v_now, v_group_expires, v_group_metadata);
  END IF;
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
