-- pgfence schema (migration 1764130000005_lease_kinds): shared leases, semaphores, several
-- keys at once, and the waiter queue.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- How a key with several holders is kept (guarantee 11):
-- - The key's row in `leases` is a *group row*: token 0 (the sequence never issues 0), and in
--   `metadata` the kind ({"kind": "shared"} or {"kind": "semaphore", "permits": N}). Its expiry is
--   the latest expiry of its holders. Everything that already reads `leases` (acquire_leases,
--   claim_leases, the reaper) then sees the key as held, for exactly as long as any holder may
--   be live: a plain (exclusive) lease waits for the last holder, and no function of the earlier
--   migrations had to change.
-- - Each holder is a row of `lease_holders` with its own token, expiry and metadata.
-- - Every statement that changes a key's holders or its group row's expiry first takes the key's
--   serialisation lock (pg_advisory_xact_lock(class id, hashtext(key)), the one acquire_leases and
--   claim_leases take), so the group row's expiry is never below a live holder's. Tokens are drawn
--   under that lock as well: an exclusive holder's token is larger than every token issued for
--   the key before it.
-- - `lease_waiters` is the queue of callers that had to wait, in arrival order (its identity).
--   Waiters refresh their row on each attempt; a row that is not refreshed expires (a crashed
--   waiter), and the next in line moves up. A shared caller does not pass an exclusive waiter
--   that arrived before it, in any process, so writers are not starved by a stream of readers;
--   a semaphore's free permits go to its waiters in arrival order.

CREATE TABLE :PGFENCE_SCHEMA.lease_holders (
  key         text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 256),
  token       bigint      NOT NULL,
  owner       text        NOT NULL,
  mode        text        NOT NULL CHECK (mode IN ('shared', 'exclusive')),
  acquired_at timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  metadata    jsonb,
  PRIMARY KEY (key, token)
);

CREATE INDEX lease_holders_expires_at_idx ON :PGFENCE_SCHEMA.lease_holders (expires_at);

CREATE TABLE :PGFENCE_SCHEMA.lease_waiters (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key         text        NOT NULL,
  owner       text        NOT NULL,
  mode        text        NOT NULL CHECK (mode IN ('shared', 'exclusive')),
  permits     integer,
  enqueued_at timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
);

CREATE INDEX lease_waiters_key_idx ON :PGFENCE_SCHEMA.lease_waiters (key, id);

CREATE INDEX lease_waiters_expires_at_idx ON :PGFENCE_SCHEMA.lease_waiters (expires_at);

-- The fencing contract, for every holder: a plain lease's token in `leases`, or a holder of a
-- shared or semaphore key in `lease_holders`. FOR SHARE holds the holder's row and its group
-- row until the caller's transaction ends: a plain lease can take the key over only by
-- updating the group row, so a guarded write commits before that, never after.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.is_current(p_key text, p_token bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT AS $fn$
  SELECT EXISTS (
    SELECT 1 FROM :PGFENCE_SCHEMA.leases l
    WHERE l.key = p_key AND l.token = p_token AND p_token <> 0
      AND l.expires_at > clock_timestamp()
    FOR SHARE
  ) OR EXISTS (
    SELECT 1 FROM :PGFENCE_SCHEMA.lease_holders h
    JOIN :PGFENCE_SCHEMA.leases l ON l.key = h.key AND l.token = 0
    WHERE h.key = p_key AND h.token = p_token AND h.expires_at > clock_timestamp()
    FOR SHARE
  )
$fn$;

-- Whether one caller may be granted p_key now. The caller holds the key's serialisation lock.
-- blocked: not now; retry_at: when the thing in the way expires by the database clock (null:
-- when woken); conflict: 'permits' when the key is held as another kind or permit count
-- (held_permits: that count, 0 for shared), which waiting cannot cure. When not blocked, the
-- rows the grant will change are locked (SKIP LOCKED: a row someone else has locked, such as a
-- group row held FOR SHARE by a holder's guarded write, makes the key busy for a moment).
CREATE FUNCTION :PGFENCE_SCHEMA.lease_admits(
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

-- Writes one grant that lease_admits allowed (and locked the rows for); the caller holds the
-- serialisation lock and passes the token it drew under it. Returns the new expiry.
CREATE FUNCTION :PGFENCE_SCHEMA.lease_grant(
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

-- One attempt at one key, of any kind: plain exclusive (p_permits null), shared, or a permit
-- of a semaphore (p_permits N). With p_queue_ttl_ms, a caller that is not granted takes (or
-- refreshes, with p_waiter) its place in the key's queue, and the row says which one.
-- Only a grant commits synchronously: a failed attempt changes nothing a crash could undo
-- harmfully (a lost queue refresh only means the waiter asks again).
CREATE FUNCTION :PGFENCE_SCHEMA.acquire_lease(
  p_key text, p_owner text, p_ttl_ms double precision, p_metadata jsonb,
  p_mode text, p_permits integer, p_waiter bigint, p_queue_ttl_ms double precision
) RETURNS TABLE (
  acquired boolean, token bigint, acquired_at timestamptz, expires_at timestamptz,
  db_now timestamptz, waiter bigint, conflict text, held_permits integer
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  v_now timestamptz;
  v_admit record;
  v_token bigint;
BEGIN
  IF p_key IS NULL OR p_owner IS NULL OR NOT p_ttl_ms > 0
     OR p_mode IS NULL OR p_mode NOT IN ('shared', 'exclusive')
     OR (p_permits IS NOT NULL AND (p_permits < 1 OR p_mode <> 'exclusive')) THEN
    RAISE EXCEPTION 'acquire_lease: a key, an owner, a positive ttl, a mode and (for a semaphore) permits of at least 1 are required'
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, hashtext(p_key));
  v_now := clock_timestamp();
  db_now := v_now;
  acquired := false;
  waiter := p_waiter;
  SELECT * INTO v_admit FROM :PGFENCE_SCHEMA.lease_admits(p_key, p_mode, p_permits, p_waiter, v_now);
  IF NOT v_admit.blocked THEN
    -- Drawn under the key's serialisation lock (guarantee 2), and durable.
    PERFORM set_config('synchronous_commit', 'on', true);
    v_token := :PGFENCE_SCHEMA.next_token();
    expires_at := :PGFENCE_SCHEMA.lease_grant(p_key, p_owner, v_token, p_ttl_ms, p_metadata, p_mode,
                                   p_permits, v_admit.group_live, v_now);
    IF p_waiter IS NOT NULL THEN
      DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = p_waiter;
    END IF;
    acquired := true;
    token := v_token;
    acquired_at := v_now;
    waiter := NULL;
    RETURN NEXT;
    RETURN;
  END IF;
  conflict := v_admit.conflict;
  held_permits := v_admit.held_permits;
  expires_at := v_admit.retry_at;
  IF conflict IS NOT NULL THEN
    IF p_waiter IS NOT NULL THEN
      DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = p_waiter;
    END IF;
    waiter := NULL;
  ELSIF p_queue_ttl_ms IS NOT NULL THEN
    IF p_waiter IS NOT NULL THEN
      UPDATE :PGFENCE_SCHEMA.lease_waiters w
      SET expires_at = v_now + p_queue_ttl_ms * interval '1 millisecond'
      WHERE w.id = p_waiter AND w.key = p_key;
    END IF;
    IF p_waiter IS NULL OR NOT FOUND THEN
      -- First wait, or a place lost for not asking in time: to the back of the queue.
      INSERT INTO :PGFENCE_SCHEMA.lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
      VALUES (p_key, p_owner, p_mode, p_permits, v_now,
              v_now + p_queue_ttl_ms * interval '1 millisecond')
      RETURNING id INTO waiter;
    END IF;
  END IF;
  RETURN NEXT;
END
$fn$;

-- Leaves a key's queue (a waiter that gave up).
CREATE FUNCTION :PGFENCE_SCHEMA.leave_lease_queue(p_waiter bigint) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  SELECT set_config('synchronous_commit', 'off', true);
  DELETE FROM :PGFENCE_SCHEMA.lease_waiters WHERE id = p_waiter;
$fn$;

-- Several keys, all or nothing (guarantee 12), in one statement: the serialisation locks of
-- every key are taken in one fixed order (so two callers of overlapping sets never deadlock),
-- then either every key is granted or none is. Nothing is held between attempts, so a caller
-- that cannot have every key holds none while it waits. One row per key, in p_keys' order.
CREATE FUNCTION :PGFENCE_SCHEMA.acquire_lease_set(
  p_keys text[], p_owner text, p_ttl_ms double precision, p_metadata jsonb, p_mode text
) RETURNS TABLE (
  key text, acquired boolean, token bigint, acquired_at timestamptz,
  expires_at timestamptz, db_now timestamptz, conflict text, held_permits integer
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_admit record;
  v_blocked boolean := false;
  v_is_blocked boolean[];
  v_retry timestamptz[];
  v_conflict text[];
  v_held integer[];
  v_group_live boolean[];
  v_tokens bigint[];
  v_expires timestamptz[];
  i integer;
BEGIN
  IF p_keys IS NULL OR cardinality(p_keys) = 0 OR p_owner IS NULL OR NOT p_ttl_ms > 0
     OR p_mode IS NULL OR p_mode NOT IN ('shared', 'exclusive')
     OR (SELECT count(DISTINCT k) FROM unnest(p_keys) AS u(k)) <> cardinality(p_keys) THEN
    RAISE EXCEPTION 'acquire_lease_set: distinct keys, an owner, a positive ttl and a mode are required'
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  -- By the lock taken, not by key: keys whose hashtext collide share a lock.
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR i IN 1 .. cardinality(p_keys) LOOP
    SELECT * INTO v_admit FROM :PGFENCE_SCHEMA.lease_admits(p_keys[i], p_mode, NULL, NULL, v_now);
    v_is_blocked[i] := v_admit.blocked;
    v_retry[i] := v_admit.retry_at;
    v_conflict[i] := v_admit.conflict;
    v_held[i] := v_admit.held_permits;
    v_group_live[i] := v_admit.group_live;
    IF v_admit.blocked THEN v_blocked := true; END IF;
  END LOOP;
  IF NOT v_blocked THEN
    PERFORM set_config('synchronous_commit', 'on', true);
    FOR i IN 1 .. cardinality(p_keys) LOOP
      v_tokens[i] := :PGFENCE_SCHEMA.next_token();
      v_expires[i] := :PGFENCE_SCHEMA.lease_grant(p_keys[i], p_owner, v_tokens[i], p_ttl_ms, p_metadata,
                                       p_mode, NULL, v_group_live[i], v_now);
    END LOOP;
  END IF;
  FOR i IN 1 .. cardinality(p_keys) LOOP
    key := p_keys[i];
    db_now := v_now;
    IF v_blocked THEN
      acquired := false;
      token := NULL;
      acquired_at := NULL;
      -- A key that was free in a set that was refused: nothing of its own to time.
      expires_at := CASE WHEN v_is_blocked[i] THEN v_retry[i] END;
      conflict := v_conflict[i];
      held_permits := v_held[i];
    ELSE
      acquired := true;
      token := v_tokens[i];
      acquired_at := v_now;
      expires_at := v_expires[i];
      conflict := NULL;
      held_permits := NULL;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;

-- Renews holders of shared and semaphore keys, each scoped to its own term, and keeps each
-- group row's expiry at least its holders'. A term whose rows someone else has locked (a
-- guarded write holding is_current's FOR SHARE) comes back busy, to be renewed shortly.
CREATE FUNCTION :PGFENCE_SCHEMA.renew_lease_holders(
  p_keys text[], p_tokens bigint[], p_ttl_ms double precision[]
) RETURNS TABLE (key text, token bigint, expires_at timestamptz, busy boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_term record;
  v_expires timestamptz;
BEGIN
  PERFORM set_config('synchronous_commit', 'on', true);
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR v_term IN SELECT u.k, u.t, u.ttl FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl) LOOP
    PERFORM 1 FROM :PGFENCE_SCHEMA.lease_holders h
    WHERE h.key = v_term.k AND h.token = v_term.t AND h.expires_at > v_now;
    CONTINUE WHEN NOT FOUND; -- gone: expired, released or taken over
    PERFORM 1 FROM :PGFENCE_SCHEMA.leases l
    WHERE l.key = v_term.k AND l.token = 0 AND l.expires_at > v_now
    FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE :PGFENCE_SCHEMA.lease_holders AS h
      SET expires_at = greatest(h.expires_at, v_now + v_term.ttl * interval '1 millisecond')
      WHERE h.key = v_term.k AND h.token = v_term.t
      RETURNING h.expires_at INTO v_expires;
      UPDATE :PGFENCE_SCHEMA.leases AS l SET expires_at = greatest(l.expires_at, v_expires)
      WHERE l.key = v_term.k AND l.token = 0;
      key := v_term.k; token := v_term.t; expires_at := v_expires; busy := false;
    ELSE
      key := v_term.k; token := v_term.t; expires_at := NULL; busy := true;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;

-- Releases holders of shared and semaphore keys, each scoped to its own term. The group row
-- then expires with the latest remaining holder (or goes, with the last one), so a plain lease
-- waiting for the key is not held up by holders that left; waiters are woken by NOTIFY.
CREATE FUNCTION :PGFENCE_SCHEMA.release_lease_holders(p_keys text[], p_tokens bigint[])
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

-- acquire_leases (version 3's, with next_token()), now fair to waiters: a key whose queue has
-- live waiters is not granted to a caller outside it. The caller then takes its place at the
-- back (acquire_lease), so a process that releases a key and asks again at once does not
-- re-take it ahead of the callers, in other processes, that were waiting for it. Uncontended,
-- this is one probe of an empty index.
CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.acquire_leases(
  p_keys text[], p_owner text, p_ttl_ms double precision[], p_metadata jsonb[]
) RETURNS TABLE (
  key text, acquired boolean, token bigint, acquired_at timestamptz,
  expires_at timestamptz, db_now timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
    #variable_conflict use_column
    DECLARE
      v_lock integer;
      v_now timestamptz;
      v_locked text[];
      v_key text;
      v_expires timestamptz;
    BEGIN
      IF p_keys IS NULL OR p_owner IS NULL OR p_ttl_ms IS NULL
         OR cardinality(p_ttl_ms) <> cardinality(p_keys)
         OR (p_metadata IS NOT NULL AND cardinality(p_metadata) <> cardinality(p_keys)) THEN
        RAISE EXCEPTION 'acquire_leases: keys, ttls and metadata must be arrays of one length'
          USING ERRCODE = '22023';
      END IF;
      PERFORM set_config('synchronous_commit', 'on', true);
      IF cardinality(p_keys) > 32 THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
      END IF;
      IF cardinality(p_keys) = 1 THEN
        -- One key, the common case (an uncontended lease, a waiter's retry): the same rules as
        -- below in a few index lookups, which costs about half the set-based statement.
        v_key := p_keys[1];
        PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, hashtext(v_key));
        v_now := clock_timestamp();
        key := v_key;
        db_now := v_now;
        acquired := false;
        IF EXISTS (SELECT 1 FROM :PGFENCE_SCHEMA.lease_waiters w
                   WHERE w.key = v_key AND w.expires_at > v_now) THEN
          -- Callers already waiting in the key's queue go first: this one joins the queue.
          SELECT l.expires_at INTO expires_at FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key;
          RETURN NEXT;
          RETURN;
        END IF;
        SELECT l.expires_at INTO v_expires FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key;
        IF NOT FOUND THEN
          -- Free. The token is drawn now, under the key's serialisation lock.
          INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
          VALUES (v_key, p_owner, :PGFENCE_SCHEMA.next_token(), v_now,
                  v_now + p_ttl_ms[1] * interval '1 millisecond', p_metadata[1])
          ON CONFLICT ON CONSTRAINT leases_pkey DO NOTHING
          RETURNING l.token, l.acquired_at, l.expires_at INTO token, acquired_at, expires_at;
          acquired := FOUND;
          IF NOT acquired THEN
            SELECT l.expires_at INTO expires_at FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key;
          END IF;
          RETURN NEXT;
          RETURN;
        END IF;
        expires_at := v_expires;
        IF v_expires > v_now THEN
          RETURN NEXT; -- live: the holder's expiry times the caller's next attempt
          RETURN;
        END IF;
        -- Expired. Busy if someone else has its row locked (see the set-based path below).
        PERFORM 1 FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
          RETURN NEXT;
          RETURN;
        END IF;
        UPDATE :PGFENCE_SCHEMA.leases AS l
        SET owner = p_owner, token = :PGFENCE_SCHEMA.next_token(), acquired_at = v_now,
            expires_at = v_now + p_ttl_ms[1] * interval '1 millisecond', metadata = p_metadata[1]
        WHERE l.key = v_key AND l.expires_at <= v_now
        RETURNING l.token, l.acquired_at, l.expires_at INTO token, acquired_at, expires_at;
        acquired := FOUND;
        IF NOT acquired THEN
          expires_at := v_expires;
        END IF;
        RETURN NEXT;
        RETURN;
      END IF;
      -- Ordered by the lock taken, not by key: keys whose hashtext collide share a lock, and
      -- ordering them by text would take that lock at different places in two batches.
      FOR v_lock IN
        SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1
      LOOP
        PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
      END LOOP;
      v_now := clock_timestamp();
      -- An expired row that someone else has locked (a guarded write holding is_current's FOR
      -- SHARE, a renewal, release or reap in flight) is busy: it is reported as not acquired, to
      -- be tried again, instead of waited for. Waiting here would hold up every other key of the
      -- batch (other callers' requests) and keep their serialisation locks taken meanwhile.
      v_locked := ARRAY(
        SELECT l.key FROM :PGFENCE_SCHEMA.leases l
        WHERE l.key = ANY (p_keys) AND l.expires_at <= v_now
        FOR NO KEY UPDATE SKIP LOCKED);

      RETURN QUERY
      WITH wanted AS (
        SELECT DISTINCT ON (u.k) u.k, u.ttl, u.md
        FROM unnest(p_keys, p_ttl_ms, coalesce(p_metadata, array_fill(NULL::jsonb, ARRAY[cardinality(p_keys)])))
          AS u(k, ttl, md)
        ORDER BY u.k
      ),
      free AS (
        SELECT w.* FROM wanted w
        WHERE NOT EXISTS (
          SELECT 1 FROM :PGFENCE_SCHEMA.leases l
          WHERE l.key = w.k AND (l.expires_at > v_now OR l.key <> ALL (v_locked))
        )
        AND NOT EXISTS (
          SELECT 1 FROM :PGFENCE_SCHEMA.lease_waiters q WHERE q.key = w.k AND q.expires_at > v_now
        )
      ),
      taken AS (
        INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
        SELECT f.k, p_owner, :PGFENCE_SCHEMA.next_token(), v_now,
               v_now + f.ttl * interval '1 millisecond', f.md
        FROM free f
        ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
          SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
              expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata
          WHERE l.expires_at <= v_now
        RETURNING l.key, l.token, l.acquired_at, l.expires_at
      )
      SELECT w.k, t.key IS NOT NULL, t.token, t.acquired_at,
             coalesce(t.expires_at, (SELECT l.expires_at FROM :PGFENCE_SCHEMA.leases l WHERE l.key = w.k)),
             v_now
      FROM wanted w LEFT JOIN taken t ON t.key = w.k;
    END
    $fn$;
