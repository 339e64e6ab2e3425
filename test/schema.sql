--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: pgfence; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA pgfence;

--
-- Name: acquire_lease(text, text, double precision, jsonb, text, integer, bigint, double precision); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.acquire_lease(p_key text, p_owner text, p_ttl_ms double precision, p_metadata jsonb, p_mode text, p_permits integer, p_waiter bigint, p_queue_ttl_ms double precision) RETURNS TABLE(acquired boolean, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone, waiter bigint, conflict text, held_permits integer)
    LANGUAGE plpgsql
    AS $$
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
  PERFORM pg_advisory_xact_lock(-241587346, hashtext(p_key));
  v_now := clock_timestamp();
  db_now := v_now;
  acquired := false;
  waiter := p_waiter;
  SELECT * INTO v_admit FROM "pgfence".lease_admits(p_key, p_mode, p_permits, p_waiter, v_now);
  IF NOT v_admit.blocked THEN
    -- Drawn under the key's serialisation lock (guarantee 2), and durable.
    PERFORM set_config('synchronous_commit', 'on', true);
    v_token := "pgfence".next_token();
    expires_at := "pgfence".lease_grant(p_key, p_owner, v_token, p_ttl_ms, p_metadata, p_mode,
                                   p_permits, v_admit.group_live, v_now);
    IF p_waiter IS NOT NULL THEN
      DELETE FROM "pgfence".lease_waiters w WHERE w.id = p_waiter;
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
      DELETE FROM "pgfence".lease_waiters w WHERE w.id = p_waiter;
    END IF;
    waiter := NULL;
  ELSIF p_queue_ttl_ms IS NOT NULL THEN
    IF p_waiter IS NOT NULL THEN
      UPDATE "pgfence".lease_waiters w
      SET expires_at = v_now + p_queue_ttl_ms * interval '1 millisecond'
      WHERE w.id = p_waiter AND w.key = p_key;
    END IF;
    IF p_waiter IS NULL OR NOT FOUND THEN
      -- First wait, or a place lost for not asking in time: to the back of the queue.
      INSERT INTO "pgfence".lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
      VALUES (p_key, p_owner, p_mode, p_permits, v_now,
              v_now + p_queue_ttl_ms * interval '1 millisecond')
      RETURNING id INTO waiter;
    END IF;
  END IF;
  RETURN NEXT;
END
$$;

--
-- Name: acquire_lease_batch(text[], text, double precision[], jsonb[], text[], integer[], bigint[], double precision[]); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.acquire_lease_batch(p_keys text[], p_owner text, p_ttl_ms double precision[], p_metadata jsonb[], p_modes text[], p_permits integer[], p_waiters bigint[], p_queue_ttl_ms double precision[]) RETURNS TABLE(ord integer, acquired boolean, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone, waiter bigint, conflict text, held_permits integer)
    LANGUAGE plpgsql
    AS $$
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
    PERFORM pg_advisory_xact_lock(-241587346, v_lock);
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
                 (SELECT l.holders FROM "pgfence".leases l WHERE l.key = v_key AND l.token = 0)
                 + (SELECT count(*)::integer FROM unnest(v_group_keys) AS g(k) WHERE g.k = v_key),
                 (SELECT count(*)::integer FROM "pgfence".lease_holders h
                  WHERE h.key = v_key AND h.expires_at > v_now))
             + (SELECT count(*)::integer FROM "pgfence".lease_waiters w
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
        PERFORM "pgfence".add_group_holders(v_group_keys, v_group_tokens, p_owner,
          v_group_modes, v_now, v_group_expires, v_group_metadata);
        v_group_keys := '{}';
        v_group_tokens := '{}';
        v_group_modes := '{}';
        v_group_expires := '{}';
        v_group_metadata := '{}';
      END IF;
      SELECT * INTO v_admit FROM "pgfence".lease_admits(v_key, v_mode, v_permits, v_waiter, v_now);
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
      v_token := "pgfence".next_token();
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
        expires_at := "pgfence".lease_grant(v_key, p_owner, v_token, p_ttl_ms[i], p_metadata[i],
                                                  v_mode, v_permits, false, v_now);
      END IF;
      IF v_waiter IS NOT NULL THEN
        DELETE FROM "pgfence".lease_waiters w WHERE w.id = v_waiter;
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
        DELETE FROM "pgfence".lease_waiters w WHERE w.id = v_waiter;
      END IF;
      waiter := NULL;
    ELSIF v_queue_ttl IS NOT NULL THEN
      IF v_waiter IS NOT NULL THEN
        UPDATE "pgfence".lease_waiters w
        SET expires_at = v_now + v_queue_ttl * interval '1 millisecond'
        WHERE w.id = v_waiter AND w.key = v_key;
      END IF;
      IF v_waiter IS NULL OR NOT FOUND THEN
        -- First wait, or a place lost for not asking in time: to the back of the queue.
        INSERT INTO "pgfence".lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
        VALUES (v_key, p_owner, v_mode, v_permits, v_now,
                v_now + v_queue_ttl * interval '1 millisecond')
        RETURNING id INTO waiter;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
  IF cardinality(v_group_keys) > 0 THEN
    PERFORM "pgfence".add_group_holders(v_group_keys, v_group_tokens, p_owner,
      v_group_modes, v_now, v_group_expires, v_group_metadata);
  END IF;
END
$$;

--
-- Name: acquire_lease_set(text[], text, double precision, jsonb, text); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.acquire_lease_set(p_keys text[], p_owner text, p_ttl_ms double precision, p_metadata jsonb, p_mode text) RETURNS TABLE(key text, acquired boolean, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone, conflict text, held_permits integer)
    LANGUAGE plpgsql
    AS $$
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
    PERFORM pg_advisory_xact_lock(-241587346, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR i IN 1 .. cardinality(p_keys) LOOP
    SELECT * INTO v_admit FROM "pgfence".lease_admits(p_keys[i], p_mode, NULL, NULL, v_now);
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
      v_tokens[i] := "pgfence".next_token();
      v_expires[i] := "pgfence".lease_grant(p_keys[i], p_owner, v_tokens[i], p_ttl_ms, p_metadata,
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
$$;

--
-- Name: acquire_lease_set(text[], text, double precision, jsonb, text, bigint[], double precision); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.acquire_lease_set(p_keys text[], p_owner text, p_ttl_ms double precision, p_metadata jsonb, p_mode text, p_waiters bigint[], p_queue_ttl_ms double precision) RETURNS TABLE(key text, acquired boolean, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone, conflict text, held_permits integer, waiter bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_admit record;
  v_blocked boolean := false;
  v_conflict boolean := false;
  v_is_blocked boolean[];
  v_retry timestamptz[];
  v_conflicts text[];
  v_held integer[];
  v_group_live boolean[];
  v_tokens bigint[];
  v_expires timestamptz[];
  v_places bigint[];
  v_place bigint;
  v_kept integer;
  v_renew boolean;
  v_gone text;
  v_sticky bigint[];
  i integer;
BEGIN
  IF p_keys IS NULL OR cardinality(p_keys) = 0 OR p_owner IS NULL OR NOT p_ttl_ms > 0
     OR p_mode IS NULL OR p_mode NOT IN ('shared', 'exclusive')
     OR (SELECT count(DISTINCT k) FROM unnest(p_keys) AS u(k)) <> cardinality(p_keys)
     OR (p_waiters IS NOT NULL AND cardinality(p_waiters) <> cardinality(p_keys))
     OR (p_queue_ttl_ms IS NOT NULL AND NOT p_queue_ttl_ms > 0) THEN
    RAISE EXCEPTION 'acquire_lease_set: distinct keys, an owner, a positive ttl, a mode and one place per key are required'
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  -- By the lock taken, not by key: keys whose hashtext collide share a lock.
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(-241587346, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  -- The set's places, all still there and live, or none of them.
  IF p_waiters IS NOT NULL THEN
    SELECT count(*)::integer INTO v_kept
    FROM unnest(p_keys, p_waiters) AS u(k, id)
    JOIN "pgfence".lease_waiters w ON w.id = u.id AND w.key = u.k AND w.owner = p_owner
    WHERE w.expires_at > v_now;
    IF v_kept > 0 AND v_kept = (SELECT count(u.id) FROM unnest(p_waiters) AS u(id)) THEN
      v_places := p_waiters;
    ELSE
      FOR v_gone IN DELETE FROM "pgfence".lease_waiters w
                    WHERE w.id = ANY (p_waiters) AND w.owner = p_owner RETURNING w.key LOOP
        PERFORM pg_notify('pgfence.released', v_gone);
      END LOOP;
      -- Where the lost places stood, the set has kept waiting: it stands there again.
      v_sticky := p_waiters;
    END IF;
  END IF;
  FOR i IN 1 .. cardinality(p_keys) LOOP
    SELECT * INTO v_admit
    FROM "pgfence".lease_admits(p_keys[i], p_mode, NULL, v_places[i], v_now);
    v_is_blocked[i] := v_admit.blocked;
    v_retry[i] := v_admit.retry_at;
    v_conflicts[i] := v_admit.conflict;
    v_held[i] := v_admit.held_permits;
    v_group_live[i] := v_admit.group_live;
    IF v_admit.blocked THEN v_blocked := true; END IF;
    IF v_admit.conflict IS NOT NULL THEN v_conflict := true; END IF;
  END LOOP;
  IF NOT v_blocked THEN
    PERFORM set_config('synchronous_commit', 'on', true);
    FOR i IN 1 .. cardinality(p_keys) LOOP
      v_tokens[i] := "pgfence".next_token();
      v_expires[i] := "pgfence".lease_grant(p_keys[i], p_owner, v_tokens[i], p_ttl_ms,
                                                  p_metadata, p_mode, NULL, v_group_live[i], v_now);
    END LOOP;
  END IF;
  IF NOT v_blocked OR v_conflict OR p_queue_ttl_ms IS NULL THEN
    IF v_places IS NOT NULL AND v_blocked THEN
      -- Given up (a permit count refused, or a try): wake those behind the places.
      PERFORM "pgfence".leave_lease_queue(u.id) FROM unnest(v_places) AS u(id)
      WHERE u.id IS NOT NULL;
    ELSIF v_places IS NOT NULL THEN
      -- Granted: the set now holds the keys, so nobody behind its places can go yet.
      DELETE FROM "pgfence".lease_waiters w WHERE w.id = ANY (v_places);
    END IF;
    v_places := NULL;
  ELSE
    -- Does a key that keeps the set waiting have no place? Then new places, together.
    v_renew := v_places IS NULL;
    FOR i IN 1 .. cardinality(p_keys) LOOP
      IF v_is_blocked[i] AND v_places[i] IS NULL THEN v_renew := true; END IF;
    END LOOP;
    IF v_renew THEN
      IF v_places IS NOT NULL THEN
        -- Those behind a place that goes may be first now: leave_lease_queue wakes them.
        PERFORM "pgfence".leave_lease_queue(u.id) FROM unnest(v_places) AS u(id)
        WHERE u.id IS NOT NULL;
        v_sticky := v_places;
      END IF;
      v_places := NULL;
      FOR i IN 1 .. cardinality(p_keys) LOOP
        IF v_is_blocked[i] OR v_sticky[i] IS NOT NULL THEN
          INSERT INTO "pgfence".lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
          VALUES (p_keys[i], p_owner, p_mode, NULL, v_now,
                  v_now + p_queue_ttl_ms * interval '1 millisecond')
          RETURNING id INTO v_place;
          v_places[i] := v_place;
        END IF;
      END LOOP;
    ELSE
      UPDATE "pgfence".lease_waiters w
      SET expires_at = v_now + p_queue_ttl_ms * interval '1 millisecond'
      WHERE w.id = ANY (v_places);
    END IF;
  END IF;
  FOR i IN 1 .. cardinality(p_keys) LOOP
    key := p_keys[i];
    db_now := v_now;
    waiter := v_places[i];
    IF v_blocked THEN
      acquired := false;
      token := NULL;
      acquired_at := NULL;
      -- A key that was free in a set that was refused: nothing of its own to time.
      expires_at := CASE WHEN v_is_blocked[i] THEN v_retry[i] END;
      conflict := v_conflicts[i];
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
$$;

--
-- Name: acquire_leases(text[], text, double precision[], jsonb[]); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.acquire_leases(p_keys text[], p_owner text, p_ttl_ms double precision[], p_metadata jsonb[]) RETURNS TABLE(key text, acquired boolean, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
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
        PERFORM pg_advisory_xact_lock(-241587346, hashtext(v_key));
        v_now := clock_timestamp();
        key := v_key;
        db_now := v_now;
        acquired := false;
        IF EXISTS (SELECT 1 FROM "pgfence".lease_waiters w
                   WHERE w.key = v_key AND w.expires_at > v_now) THEN
          -- Callers already waiting in the key's queue go first: this one joins the queue.
          SELECT l.expires_at INTO expires_at FROM "pgfence".leases l WHERE l.key = v_key;
          RETURN NEXT;
          RETURN;
        END IF;
        SELECT l.expires_at INTO v_expires FROM "pgfence".leases l WHERE l.key = v_key;
        IF NOT FOUND THEN
          -- Free. The token is drawn now, under the key's serialisation lock.
          INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata)
          VALUES (v_key, p_owner, "pgfence".next_token(), v_now,
                  v_now + p_ttl_ms[1] * interval '1 millisecond', p_metadata[1])
          ON CONFLICT ON CONSTRAINT leases_pkey DO NOTHING
          RETURNING l.token, l.acquired_at, l.expires_at INTO token, acquired_at, expires_at;
          acquired := FOUND;
          IF NOT acquired THEN
            SELECT l.expires_at INTO expires_at FROM "pgfence".leases l WHERE l.key = v_key;
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
        PERFORM 1 FROM "pgfence".leases l WHERE l.key = v_key FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
          RETURN NEXT;
          RETURN;
        END IF;
        UPDATE "pgfence".leases AS l
        SET owner = p_owner, token = "pgfence".next_token(), acquired_at = v_now,
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
        PERFORM pg_advisory_xact_lock(-241587346, v_lock);
      END LOOP;
      v_now := clock_timestamp();
      -- An expired row that someone else has locked (a guarded write holding is_current's FOR
      -- SHARE, a renewal, release or reap in flight) is busy: it is reported as not acquired, to
      -- be tried again, instead of waited for. Waiting here would hold up every other key of the
      -- batch (other callers' requests) and keep their serialisation locks taken meanwhile.
      v_locked := ARRAY(
        SELECT l.key FROM "pgfence".leases l
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
          SELECT 1 FROM "pgfence".leases l
          WHERE l.key = w.k AND (l.expires_at > v_now OR l.key <> ALL (v_locked))
        )
        AND NOT EXISTS (
          SELECT 1 FROM "pgfence".lease_waiters q WHERE q.key = w.k AND q.expires_at > v_now
        )
      ),
      taken AS (
        INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata)
        SELECT f.k, p_owner, "pgfence".next_token(), v_now,
               v_now + f.ttl * interval '1 millisecond', f.md
        FROM free f
        ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
          SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
              expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata
          WHERE l.expires_at <= v_now
        RETURNING l.key, l.token, l.acquired_at, l.expires_at
      )
      SELECT w.k, t.key IS NOT NULL, t.token, t.acquired_at,
             coalesce(t.expires_at, (SELECT l.expires_at FROM "pgfence".leases l WHERE l.key = w.k)),
             v_now
      FROM wanted w LEFT JOIN taken t ON t.key = w.k;
    END
    $$;

--
-- Name: add_group_holders(text[], bigint[], text, text[], timestamp with time zone, timestamp with time zone[], jsonb[]); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.add_group_holders(p_keys text[], p_tokens bigint[], p_owner text, p_modes text[], p_now timestamp with time zone, p_expires timestamp with time zone[], p_metadata jsonb[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO "pgfence".lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
  SELECT u.k, u.t, p_owner, u.m, p_now, u.e, u.md
  FROM unnest(p_keys, p_tokens, p_modes, p_expires, p_metadata) AS u(k, t, m, e, md);
  UPDATE "pgfence".leases AS l
  SET expires_at = greatest(l.expires_at, g.latest), holders = l.holders + g.n
  FROM (SELECT u.k, max(u.e) AS latest, count(*)::integer AS n
        FROM unnest(p_keys, p_expires) AS u(k, e) GROUP BY u.k) AS g
  WHERE l.key = g.k AND l.token = 0;
END
$$;

--
-- Name: advisory_grant_delay(double precision); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.advisory_grant_delay(p_delay_ms double precision) RETURNS double precision
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  v_at record;
  v_since timestamptz;
  v_now timestamptz;
BEGIN
  IF p_delay_ms IS NULL OR NOT (p_delay_ms >= 0 AND p_delay_ms <= 3600000) THEN
    RAISE EXCEPTION 'advisory_grant_delay: the delay must be 0 to 3600000 ms, got %', p_delay_ms
      USING ERRCODE = '22023';
  END IF;
  SELECT * INTO STRICT v_at FROM "pgfence".server_incarnation();
  IF v_at.in_recovery THEN
    IF NOT EXISTS (SELECT 1 FROM "pgfence".incarnations) THEN
      RETURN 0;
    END IF;
    v_since := v_at.started_at;
  ELSE
    SELECT s.first_seen INTO v_since FROM "pgfence".incarnation_seen s
    WHERE s.system_id = v_at.system_id AND s.timeline = v_at.timeline
      AND s.started_at = v_at.started_at;
    IF NOT FOUND THEN
      BEGIN
        PERFORM set_config('synchronous_commit', 'local', true);
        v_now := clock_timestamp();
        -- Concurrent first callers: one inserts, the others wait for it and then read its row.
        INSERT INTO "pgfence".incarnation_seen AS s (system_id, timeline, started_at, first_seen)
        VALUES (v_at.system_id, v_at.timeline, v_at.started_at,
                CASE WHEN EXISTS (SELECT 1 FROM "pgfence".incarnations) THEN v_now END)
        ON CONFLICT ON CONSTRAINT incarnation_seen_pkey DO NOTHING;
        INSERT INTO "pgfence".incarnations AS i (system_id, timeline, started_at, first_seen)
        VALUES (v_at.system_id, v_at.timeline, v_at.started_at, v_now)
        ON CONFLICT ON CONSTRAINT incarnations_pkey DO NOTHING;
        SELECT s.first_seen INTO STRICT v_since FROM "pgfence".incarnation_seen s
        WHERE s.system_id = v_at.system_id AND s.timeline = v_at.timeline
          AND s.started_at = v_at.started_at;
      EXCEPTION WHEN read_only_sql_transaction THEN
        v_since := CASE WHEN EXISTS (SELECT 1 FROM "pgfence".incarnations)
                        THEN v_at.started_at END;
      END;
    END IF;
    IF v_since IS NULL THEN
      RETURN 0;
    END IF;
  END IF;
  RETURN greatest(0, 1000 * extract(epoch FROM
    greatest(v_since, v_at.started_at) + p_delay_ms * interval '1 millisecond' - clock_timestamp()
  ))::double precision;
END
$$;

--
-- Name: announce_permits(text, integer, integer); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.announce_permits(p_key text, p_permits integer, p_left integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
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
      SELECT 1 FROM "pgfence".lease_waiters w
      WHERE w.key = p_key AND w.expires_at > v_now LIMIT v_free + 1) AS x;
    IF v_waiting > v_free THEN
      SELECT greatest(p_permits - count(*)::integer, 0) INTO v_free
      FROM "pgfence".lease_holders h WHERE h.key = p_key AND h.expires_at > v_now;
    END IF;
    FOR v_waiter IN
      SELECT w.id, w.permits FROM "pgfence".lease_waiters w
      WHERE w.key = p_key AND w.expires_at > v_now
      ORDER BY w.id
      LIMIT v_free
    LOOP
      IF v_waiter.permits IS NULL THEN
        -- Not a semaphore waiter (it waits for the last holder, or is refused): everyone asks.
        v_everyone := true;
        EXIT;
      END IF;
      PERFORM pg_notify('pgfence.handoff', v_waiter.id::text || ':' || p_key);
      v_everyone := false;
    END LOOP;
  ELSE
    SELECT w.id, w.mode INTO v_waiter FROM "pgfence".lease_waiters w
    WHERE w.key = p_key AND w.expires_at > v_now
    ORDER BY w.id
    LIMIT 1;
    IF FOUND AND v_waiter.mode = 'exclusive' THEN
      PERFORM pg_notify('pgfence.handoff', v_waiter.id::text || ':' || p_key);
      v_everyone := false;
    END IF;
  END IF;
  -- Also when nobody waits: whoever is not in the queue (a claimer, an observer) may care.
  IF v_everyone THEN
    PERFORM pg_notify('pgfence.released', p_key);
  END IF;
END
$$;

--
-- Name: announce_release(text); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.announce_release(p_key text) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_id bigint;
  v_mode text;
  v_permits integer;
BEGIN
  SELECT w.id, w.mode, w.permits INTO v_id, v_mode, v_permits
  FROM "pgfence".lease_waiters w
  WHERE w.key = p_key AND w.expires_at > clock_timestamp()
  ORDER BY w.id
  LIMIT 1;
  IF FOUND AND v_mode = 'exclusive' AND v_permits IS NULL THEN
    PERFORM pg_notify('pgfence.handoff', v_id::text || ':' || p_key);
  ELSE
    PERFORM pg_notify('pgfence.released', p_key);
  END IF;
END
$$;

--
-- Name: claim_candidates(text[], text, double precision); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.claim_candidates(p_keys text[], p_owner text, p_ttl_ms double precision) RETURNS TABLE(key text, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
#variable_conflict use_column
DECLARE
  v_key text;
  v_now timestamptz;
BEGIN
  IF p_keys IS NULL OR p_owner IS NULL OR p_ttl_ms IS NULL OR NOT p_ttl_ms > 0 THEN
    RAISE EXCEPTION 'claim_candidates: keys, owner and a positive ttl are required'
      USING ERRCODE = '22023';
  END IF;
  FOREACH v_key IN ARRAY p_keys LOOP
    IF v_key IS NULL OR char_length(v_key) NOT BETWEEN 1 AND 256 THEN
      RAISE EXCEPTION 'claim: a candidate key must be text of 1 to 256 characters, got %',
        coalesce('"' || left(v_key, 300) || '"', 'NULL')
        USING ERRCODE = '22023', DETAIL = coalesce(left(v_key, 300), 'NULL');
    END IF;
  END LOOP;
  PERFORM set_config('synchronous_commit', 'on', true);
  v_now := clock_timestamp();
  RETURN QUERY
  WITH candidates AS MATERIALIZED (
    SELECT u.k, u.ord FROM unnest(p_keys) WITH ORDINALITY AS u(k, ord)
    WHERE pg_try_advisory_xact_lock(-241587346, hashtext(u.k))
  ),
  expired AS MATERIALIZED (
    SELECT l.key FROM "pgfence".leases l JOIN candidates c ON l.key = c.k
    WHERE l.expires_at <= v_now
    FOR NO KEY UPDATE OF l SKIP LOCKED
  ),
  taken_over AS (
    UPDATE "pgfence".leases AS l
    SET owner = p_owner, token = "pgfence".next_token(), acquired_at = v_now,
        expires_at = v_now + p_ttl_ms * interval '1 millisecond', metadata = NULL
    FROM expired e
    WHERE l.key = e.key AND l.expires_at <= v_now
    RETURNING l.key, l.token, l.acquired_at, l.expires_at
  ),
  inserted AS (
    INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    SELECT c.k, p_owner, "pgfence".next_token(), v_now,
           v_now + p_ttl_ms * interval '1 millisecond', NULL
    FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM "pgfence".leases x WHERE x.key = c.k)
    ORDER BY c.ord
    ON CONFLICT ON CONSTRAINT leases_pkey DO NOTHING
    RETURNING l.key, l.token, l.acquired_at, l.expires_at
  )
  SELECT t.key, t.token, t.acquired_at, t.expires_at
  FROM (SELECT * FROM taken_over UNION ALL SELECT * FROM inserted) t
  JOIN candidates c ON c.k = t.key
  ORDER BY c.ord;
END
$$;

--
-- Name: claim_leases(text[], text, double precision, integer); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.claim_leases(p_keys text[], p_owner text, p_ttl_ms double precision, p_limit integer) RETURNS TABLE(key text, token bigint, acquired_at timestamp with time zone, expires_at timestamp with time zone, db_now timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
    #variable_conflict use_column
    DECLARE
      v_key text;
      v_expires timestamptz;
      v_now timestamptz;
      v_taken integer := 0;
    BEGIN
      IF p_keys IS NULL OR p_owner IS NULL OR p_ttl_ms IS NULL OR NOT p_ttl_ms > 0
         OR p_limit IS NULL OR p_limit < 0 THEN
        RAISE EXCEPTION 'claim_leases: keys, owner, a positive ttl and a limit are required'
          USING ERRCODE = '22023';
      END IF;
      PERFORM set_config('synchronous_commit', 'on', true);
      FOREACH v_key IN ARRAY p_keys LOOP
        EXIT WHEN v_taken >= p_limit;
        IF v_key IS NULL OR char_length(v_key) NOT BETWEEN 1 AND 256 THEN
          RAISE EXCEPTION 'claim: a candidate key must be text of 1 to 256 characters, got %',
            coalesce('"' || left(v_key, 300) || '"', 'NULL')
            USING ERRCODE = '22023', DETAIL = coalesce(left(v_key, 300), 'NULL');
        END IF;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(-241587346, hashtext(v_key));

        SELECT l.expires_at INTO v_expires FROM "pgfence".leases l WHERE l.key = v_key
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
          v_now := clock_timestamp();
          CONTINUE WHEN v_expires > v_now;
          UPDATE "pgfence".leases AS l
          SET owner = p_owner, token = "pgfence".next_token(), acquired_at = v_now,
              expires_at = v_now + p_ttl_ms * interval '1 millisecond', metadata = NULL
          WHERE l.key = v_key
          RETURNING l.key, l.token, l.acquired_at, l.expires_at
          INTO key, token, acquired_at, expires_at;
        ELSE
          -- No row, or a row someone else has locked: only the first may be taken.
          PERFORM 1 FROM "pgfence".leases l WHERE l.key = v_key;
          CONTINUE WHEN FOUND;
          v_now := clock_timestamp();
          INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata)
          VALUES (v_key, p_owner, "pgfence".next_token(), v_now,
                  v_now + p_ttl_ms * interval '1 millisecond', NULL)
          ON CONFLICT ON CONSTRAINT leases_pkey DO NOTHING
          RETURNING l.key, l.token, l.acquired_at, l.expires_at
          INTO key, token, acquired_at, expires_at;
          CONTINUE WHEN NOT FOUND;
        END IF;
        db_now := v_now;
        v_taken := v_taken + 1;
        RETURN NEXT;
      END LOOP;
    END
    $$;

--
-- Name: is_current(text, bigint); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.is_current(p_key text, p_token bigint) RETURNS boolean
    LANGUAGE sql STRICT
    AS $$
  SELECT EXISTS (
    SELECT 1 FROM "pgfence".leases l
    WHERE l.key = p_key AND l.token = p_token AND p_token <> 0
      AND l.expires_at > clock_timestamp()
    FOR SHARE
  ) OR EXISTS (
    SELECT 1 FROM "pgfence".lease_holders h
    JOIN "pgfence".leases l ON l.key = h.key AND l.token = 0
    WHERE h.key = p_key AND h.token = p_token AND h.expires_at > clock_timestamp()
    FOR SHARE
  )
$$;

--
-- Name: lease_admits(text, text, integer, bigint, timestamp with time zone); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.lease_admits(p_key text, p_mode text, p_permits integer, p_waiter bigint, p_now timestamp with time zone, OUT blocked boolean, OUT retry_at timestamp with time zone, OUT conflict text, OUT held_permits integer, OUT group_live boolean) RETURNS record
    LANGUAGE plpgsql
    AS $$
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
  FROM "pgfence".leases l WHERE l.key = p_key;
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
      SELECT count(*)::integer INTO v_ahead FROM "pgfence".lease_waiters w
      WHERE w.key = p_key AND w.expires_at > p_now AND (p_waiter IS NULL OR w.id < p_waiter);
      -- The group row's count bounds its live holders from above (see the header): below the
      -- permits, there is room without reading the holders.
      IF v_holders IS NULL OR v_holders + v_ahead >= p_permits THEN
        SELECT count(*)::integer, min(h.expires_at) INTO v_count, retry_at
        FROM "pgfence".lease_holders h WHERE h.key = p_key AND h.expires_at > p_now;
        blocked := v_count + v_ahead >= p_permits;
        -- A permit free but promised to a waiter ahead: woken when that one is served.
        IF v_count < p_permits THEN retry_at := NULL; END IF;
      END IF;
    ELSE
      -- Shared on shared: only an exclusive waiter that came first is in the way.
      blocked := EXISTS (
        SELECT 1 FROM "pgfence".lease_waiters w
        WHERE w.key = p_key AND w.expires_at > p_now AND w.mode = 'exclusive'
          AND (p_waiter IS NULL OR w.id < p_waiter));
      IF blocked THEN retry_at := v_expires; END IF;
    END IF;
  ELSE
    -- Free (or expired): the callers queued before this one go first.
    IF p_mode = 'shared' THEN
      blocked := EXISTS (
        SELECT 1 FROM "pgfence".lease_waiters w
        WHERE w.key = p_key AND w.expires_at > p_now AND w.mode = 'exclusive'
          AND (p_waiter IS NULL OR w.id < p_waiter));
    ELSE
      SELECT count(*)::integer INTO v_ahead FROM "pgfence".lease_waiters w
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
  PERFORM 1 FROM "pgfence".leases l WHERE l.key = p_key FOR NO KEY UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    blocked := true;
    retry_at := p_now;
  END IF;
END
$$;

--
-- Name: lease_grant(text, text, bigint, double precision, jsonb, text, integer, boolean, timestamp with time zone); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.lease_grant(p_key text, p_owner text, p_token bigint, p_ttl_ms double precision, p_metadata jsonb, p_mode text, p_permits integer, p_group_live boolean, p_now timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_expires timestamptz := p_now + p_ttl_ms * interval '1 millisecond';
  v_old_token bigint;
  v_old_holders integer;
BEGIN
  IF p_mode = 'exclusive' AND p_permits IS NULL THEN
    INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    VALUES (p_key, p_owner, p_token, p_now, v_expires, p_metadata)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = EXCLUDED.token, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata, holders = NULL;
    RETURN v_expires;
  END IF;
  IF p_group_live THEN
    UPDATE "pgfence".leases AS l
    SET expires_at = greatest(l.expires_at, v_expires), holders = l.holders + 1
    WHERE l.key = p_key AND l.token = 0;
  ELSE
    -- A new group. Holder rows the key still has are expired (a group dies only after its
    -- holders). Those of an expired group row that still counts some go now; with no row, or
    -- a row counting none, there are none to look for (stragglers of a group that a plain lease
    -- took over, or the reaper took in part, are expired and go with the reaper).
    SELECT l.token, l.holders INTO v_old_token, v_old_holders
    FROM "pgfence".leases l WHERE l.key = p_key;
    IF FOUND AND v_old_token = 0 AND v_old_holders IS DISTINCT FROM 0 THEN
      DELETE FROM "pgfence".lease_holders h WHERE h.key = p_key AND h.expires_at <= p_now;
    END IF;
    INSERT INTO "pgfence".leases AS l (key, owner, token, acquired_at, expires_at, metadata, holders)
    VALUES (p_key, '', 0, p_now, v_expires,
            CASE WHEN p_permits IS NULL THEN jsonb_build_object('kind', 'shared')
                 ELSE jsonb_build_object('kind', 'semaphore', 'permits', p_permits) END,
            1)
    ON CONFLICT ON CONSTRAINT leases_pkey DO UPDATE
      SET owner = EXCLUDED.owner, token = 0, acquired_at = EXCLUDED.acquired_at,
          expires_at = EXCLUDED.expires_at, metadata = EXCLUDED.metadata, holders = 1;
  END IF;
  INSERT INTO "pgfence".lease_holders (key, token, owner, mode, acquired_at, expires_at, metadata)
  VALUES (p_key, p_token, p_owner, p_mode, p_now, v_expires, p_metadata);
  RETURN v_expires;
END
$$;

--
-- Name: leave_lease_queue(bigint); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.leave_lease_queue(p_waiter bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_key text;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  DELETE FROM "pgfence".lease_waiters w WHERE w.id = p_waiter RETURNING w.key INTO v_key;
  IF FOUND THEN
    PERFORM pg_notify('pgfence.released', v_key);
  END IF;
END
$$;

--
-- Name: next_token(); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.next_token() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  -- First: on a standby this fails as a read-only transaction, as any write there does.
  v_counter bigint := nextval('"pgfence".fence_token_counter');
  v_timeline bigint := "pgfence".server_timeline();
  v_system bigint := "pgfence".server_system_id();
  v_epoch bigint;
BEGIN
  SELECT e.base + e.timeline INTO v_epoch FROM "pgfence".token_epoch e
  WHERE e.timeline = v_timeline AND e.system_id = v_system;
  IF NOT FOUND THEN
    -- A new timeline or a new cluster: record it, once. Concurrent drawers queue on the row;
    -- the losers find it recorded (READ COMMITTED re-checks the WHERE) and read it.
    UPDATE "pgfence".token_epoch e
    SET base = CASE WHEN e.system_id IS NOT DISTINCT FROM v_system AND v_timeline > e.timeline
                    THEN e.base ELSE e.base + e.timeline END,
        timeline = v_timeline,
        system_id = v_system
    WHERE (e.timeline, e.system_id) IS DISTINCT FROM (v_timeline, v_system)
    RETURNING e.base + e.timeline INTO v_epoch;
    IF NOT FOUND THEN
      SELECT e.base + e.timeline INTO STRICT v_epoch FROM "pgfence".token_epoch e;
    END IF;
  END IF;
  IF v_epoch NOT BETWEEN 1 AND 524287 THEN
    RAISE EXCEPTION 'pgfence: fencing-token epoch % is out of range (1 to 524287)', v_epoch
      USING ERRCODE = '22003';
  END IF;
  RETURN v_epoch * 17592186044416 + v_counter;
END
$$;

--
-- Name: record_term(text, bigint, integer); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.record_term(p_key text, p_token bigint, p_keep integer) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_oldest bigint;
BEGIN
  -- The term's row stays locked until the record commits: a release (DELETE) or a takeover
  -- (UPDATE) of it waits, so no later term can be granted, recorded and read by an observer
  -- before this one is in the log (the observer, past it by token, would never yield it).
  -- A row released or taken over first is not found: the term is over, nothing is recorded.
  PERFORM 1 FROM "pgfence".leases l
  WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
  FOR SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO "pgfence".election_terms AS t (key, token, owner, value, began_at, expires_at)
  SELECT l.key, l.token, l.owner, l.metadata->>'value', l.acquired_at, l.expires_at
  FROM "pgfence".leases l
  WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
  ON CONFLICT (key, token) DO UPDATE SET expires_at = excluded.expires_at;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  SELECT t.token INTO v_oldest
  FROM "pgfence".election_terms t
  WHERE t.key = p_key
  ORDER BY t.token DESC
  OFFSET greatest(p_keep, 1) - 1
  LIMIT 1;
  IF v_oldest IS NOT NULL THEN
    DELETE FROM "pgfence".election_terms t WHERE t.key = p_key AND t.token < v_oldest;
  END IF;
  PERFORM pg_notify('pgfence.released', p_key);
  RETURN true;
END
$$;

--
-- Name: release_lease_holders(text[], bigint[]); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.release_lease_holders(p_keys text[], p_tokens bigint[]) RETURNS TABLE(key text, token bigint)
    LANGUAGE plpgsql
    AS $$
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
    PERFORM pg_advisory_xact_lock(-241587346, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  WITH gone AS (
    DELETE FROM "pgfence".lease_holders h
    USING unnest(p_keys, p_tokens) AS u(k, t)
    WHERE h.key = u.k AND h.token = u.t
    RETURNING h.key AS k, h.token AS t, h.expires_at > v_now AS live
  )
  SELECT array_agg(g.k), array_agg(g.t), array_agg(g.k) FILTER (WHERE g.live)
  INTO v_keys, v_tokens, v_live FROM gone g;
  FOR v_key IN SELECT DISTINCT u.k FROM unnest(v_keys) AS u(k) LOOP
    SELECT count(*)::integer INTO v_gone FROM unnest(v_live) AS u(k) WHERE u.k = v_key;
    SELECT l.holders, (l.metadata->>'permits')::integer INTO v_holders, v_permits
    FROM "pgfence".leases l WHERE l.key = v_key AND l.token = 0;
    v_left := greatest(v_holders - v_gone, 0);
    IF v_holders IS NOT NULL AND v_holders - v_gone <= 0 THEN
      -- The count bounds the live holders from above: none is left.
      DELETE FROM "pgfence".leases l WHERE l.key = v_key AND l.token = 0;
    ELSIF v_holders IS NOT NULL THEN
      -- Some may be left. The group's expiry stays where it is, at or above every remaining
      -- holder's (finding the latest of them would read every holder row the key ever had
      -- until VACUUM: one hot key leaves thousands of dead index entries a second). If the
      -- remaining holders crash, the key frees up at the latest expiry its group had, at most
      -- one TTL later than the latest of theirs.
      UPDATE "pgfence".leases AS l SET holders = v_holders - v_gone
      WHERE l.key = v_key AND l.token = 0;
    ELSE
      -- A group from before counts were kept: as before, from its holder rows.
      SELECT max(h.expires_at), count(*)::integer INTO v_latest, v_holders
      FROM "pgfence".lease_holders h WHERE h.key = v_key AND h.expires_at > v_now;
      v_left := coalesce(v_holders, 0);
      IF v_latest IS NULL THEN
        DELETE FROM "pgfence".leases l WHERE l.key = v_key AND l.token = 0;
      ELSE
        UPDATE "pgfence".leases AS l SET expires_at = v_latest, holders = v_holders
        WHERE l.key = v_key AND l.token = 0 AND l.expires_at > v_now;
      END IF;
    END IF;
    -- A semaphore's free permits go to the waiters at the head of its queue (announce_permits).
    PERFORM "pgfence".announce_permits(v_key, v_permits, v_left);
  END LOOP;
  RETURN QUERY SELECT u.k, u.t FROM unnest(v_keys, v_tokens) AS u(k, t);
END
$$;

--
-- Name: release_leases(text[], bigint[], boolean); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.release_leases(p_keys text[], p_tokens bigint[], p_skip_locked boolean DEFAULT false) RETURNS TABLE(key text, token bigint, busy boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
    #variable_conflict use_column
    DECLARE
      v_key text;
      v_token bigint;
      v_skip boolean := coalesce(p_skip_locked, false);
      v_busy boolean;
    BEGIN
      PERFORM set_config('synchronous_commit', 'off', true);
      IF cardinality(p_keys) > 32 THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
      END IF;
      IF v_skip THEN
        -- One statement, joins only (see renew_leases): the terms deleted, then the ones
        -- someone else had locked, reported busy.
        FOR v_key, v_token, v_busy IN
          WITH wanted AS (
            SELECT u.k, u.t FROM unnest(p_keys, p_tokens) AS u(k, t)
          ),
          locked AS (
            SELECT l.key, l.token FROM "pgfence".leases l
            JOIN wanted w ON l.key = w.k AND l.token = w.t
            FOR UPDATE OF l SKIP LOCKED
          ),
          gone AS (
            DELETE FROM "pgfence".leases AS l USING locked x
            WHERE l.key = x.key AND l.token = x.token
            RETURNING l.key, l.token
          )
          SELECT g.key, g.token, false FROM gone g
          UNION ALL
          SELECT l.key, l.token, true FROM "pgfence".leases l
          JOIN wanted w ON l.key = w.k AND l.token = w.t
          WHERE NOT EXISTS (SELECT 1 FROM locked x WHERE x.key = l.key)
        LOOP
          IF NOT v_busy THEN
            PERFORM pg_notify('pgfence.released', v_key);
          END IF;
          key := v_key;
          token := v_token;
          busy := v_busy;
          RETURN NEXT;
        END LOOP;
        RETURN;
      END IF;
      FOR v_key, v_token IN
        DELETE FROM "pgfence".leases AS l
        USING unnest(p_keys, p_tokens) AS u(k, t)
        WHERE l.key = u.k AND l.token = u.t
        RETURNING l.key, l.token
      LOOP
        PERFORM pg_notify('pgfence.released', v_key);
        key := v_key;
        token := v_token;
        busy := false;
        RETURN NEXT;
      END LOOP;
    END
    $$;

--
-- Name: release_leases(text[], bigint[], text, boolean); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.release_leases(p_keys text[], p_tokens bigint[], p_owner text, p_skip_locked boolean DEFAULT false) RETURNS TABLE(key text, token bigint, busy boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
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
        JOIN "pgfence".leases l ON l.key = u.k
        WHERE l.token = u.t AND l.owner = p_owner
        FOR UPDATE OF l
      )
      DELETE FROM "pgfence".leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    LOOP
      PERFORM "pgfence".announce_release(v_key);
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
      JOIN "pgfence".leases l ON l.key = w.k
      WHERE l.token = w.t AND l.owner = p_owner
      FOR UPDATE OF l SKIP LOCKED
    ),
    gone AS (
      DELETE FROM "pgfence".leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    )
    SELECT g.key, g.token, false FROM gone g
    UNION ALL
    -- Busy: a term of this owner that someone else has locked.
    SELECT l.key, l.token, true
    FROM (SELECT w.k, w.t FROM wanted w EXCEPT ALL SELECT x.key, x.token FROM locked x) AS d
    JOIN "pgfence".leases l ON l.key = d.k
    WHERE l.token = d.t AND l.owner = p_owner
  LOOP
    IF NOT v_busy THEN
      PERFORM "pgfence".announce_release(v_key);
    END IF;
    key := v_key;
    token := v_token;
    busy := v_busy;
    RETURN NEXT;
  END LOOP;
END
$$;

--
-- Name: renew_lease_holders(text[], bigint[], double precision[]); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.renew_lease_holders(p_keys text[], p_tokens bigint[], p_ttl_ms double precision[]) RETURNS TABLE(key text, token bigint, expires_at timestamp with time zone, busy boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  v_lock integer;
  v_now timestamptz;
  v_term record;
  v_expires timestamptz;
BEGIN
  PERFORM set_config('synchronous_commit', 'on', true);
  FOR v_lock IN SELECT DISTINCT hashtext(u.k) FROM unnest(p_keys) AS u(k) ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(-241587346, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  FOR v_term IN SELECT u.k, u.t, u.ttl FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl) LOOP
    PERFORM 1 FROM "pgfence".lease_holders h
    WHERE h.key = v_term.k AND h.token = v_term.t AND h.expires_at > v_now;
    CONTINUE WHEN NOT FOUND; -- gone: expired, released or taken over
    PERFORM 1 FROM "pgfence".leases l
    WHERE l.key = v_term.k AND l.token = 0 AND l.expires_at > v_now
    FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE "pgfence".lease_holders AS h
      SET expires_at = greatest(h.expires_at, v_now + v_term.ttl * interval '1 millisecond')
      WHERE h.key = v_term.k AND h.token = v_term.t
      RETURNING h.expires_at INTO v_expires;
      UPDATE "pgfence".leases AS l SET expires_at = greatest(l.expires_at, v_expires)
      WHERE l.key = v_term.k AND l.token = 0;
      key := v_term.k; token := v_term.t; expires_at := v_expires; busy := false;
    ELSE
      key := v_term.k; token := v_term.t; expires_at := NULL; busy := true;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

--
-- Name: renew_leases(text[], bigint[], double precision[], boolean); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.renew_leases(p_keys text[], p_tokens bigint[], p_ttl_ms double precision[], p_skip_locked boolean DEFAULT false) RETURNS TABLE(key text, token bigint, expires_at timestamp with time zone, db_now timestamp with time zone, busy boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
    #variable_conflict use_column
    DECLARE
      v_now timestamptz;
    BEGIN
      PERFORM set_config('synchronous_commit', 'on', true);
      IF cardinality(p_keys) > 32 THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
      END IF;
      v_now := clock_timestamp();
      IF NOT coalesce(p_skip_locked, false) THEN
        RETURN QUERY
        UPDATE "pgfence".leases AS l
        SET expires_at = greatest(l.expires_at, v_now + u.ttl * interval '1 millisecond')
        FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl)
        WHERE l.key = u.k AND l.token = u.t AND l.expires_at > v_now
        RETURNING l.key, l.token, l.expires_at, v_now, false;
        RETURN;
      END IF;
      -- One statement, joins only: a membership test against an array would cost
      -- O(terms²) for a process renewing thousands of leases at once.
      RETURN QUERY
      WITH wanted AS (
        SELECT u.k, u.t, u.ttl FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl)
      ),
      locked AS (
        SELECT l.key FROM "pgfence".leases l
        JOIN wanted w ON l.key = w.k AND l.token = w.t
        WHERE l.expires_at > v_now
        FOR NO KEY UPDATE OF l SKIP LOCKED
      ),
      renewed AS (
        UPDATE "pgfence".leases AS l
        SET expires_at = greatest(l.expires_at, v_now + w.ttl * interval '1 millisecond')
        FROM wanted w, locked x
        WHERE l.key = w.k AND l.token = w.t AND l.expires_at > v_now AND x.key = l.key
        RETURNING l.key, l.token, l.expires_at
      )
      SELECT r.key, r.token, r.expires_at, v_now, false FROM renewed r
      UNION ALL
      SELECT l.key, l.token, l.expires_at, v_now, true
      FROM "pgfence".leases l
      JOIN wanted w ON l.key = w.k AND l.token = w.t
      WHERE l.expires_at > v_now AND NOT EXISTS (SELECT 1 FROM locked x WHERE x.key = l.key);
    END
    $$;

--
-- Name: renew_leases(text[], bigint[], text, double precision[], boolean); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.renew_leases(p_keys text[], p_tokens bigint[], p_owner text, p_ttl_ms double precision[], p_skip_locked boolean DEFAULT false) RETURNS TABLE(key text, token bigint, expires_at timestamp with time zone, db_now timestamp with time zone, busy boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
#variable_conflict use_column
DECLARE
  v_now timestamptz;
BEGIN
  IF p_keys IS NULL OR p_tokens IS NULL OR p_owner IS NULL OR p_ttl_ms IS NULL
     OR cardinality(p_tokens) <> cardinality(p_keys)
     OR cardinality(p_ttl_ms) <> cardinality(p_keys) THEN
    RAISE EXCEPTION 'renew_leases: keys, tokens and ttls must be arrays of one length, with an owner'
      USING ERRCODE = '22023';
  END IF;
  PERFORM set_config('synchronous_commit', 'on', true);
  IF cardinality(p_keys) > 32 THEN
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
  END IF;
  v_now := clock_timestamp();
  IF NOT coalesce(p_skip_locked, false) THEN
    -- Waits for rows someone else has locked, as any UPDATE does; busy is always false.
    RETURN QUERY
    WITH locked AS (
      SELECT l.key, l.token, u.ttl FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl)
      JOIN "pgfence".leases l ON l.key = u.k
      WHERE l.token = u.t AND l.owner = p_owner AND l.expires_at > v_now
      FOR NO KEY UPDATE OF l
    )
    UPDATE "pgfence".leases AS l
    SET expires_at = greatest(l.expires_at, v_now + x.ttl * interval '1 millisecond')
    FROM locked x
    WHERE l.key = x.key AND l.token = x.token AND l.expires_at > v_now
    RETURNING l.key, l.token, l.expires_at, v_now, false;
    RETURN;
  END IF;
  RETURN QUERY
  WITH wanted AS (
    SELECT u.k, u.t, u.ttl FROM unnest(p_keys, p_tokens, p_ttl_ms) AS u(k, t, ttl)
  ),
  locked AS (
    SELECT l.key, l.token, w.ttl FROM wanted w
    JOIN "pgfence".leases l ON l.key = w.k
    WHERE l.token = w.t AND l.owner = p_owner AND l.expires_at > v_now
    FOR NO KEY UPDATE OF l SKIP LOCKED
  ),
  renewed AS (
    UPDATE "pgfence".leases AS l
    SET expires_at = greatest(l.expires_at, v_now + x.ttl * interval '1 millisecond')
    FROM locked x
    WHERE l.key = x.key AND l.token = x.token
    RETURNING l.key, l.token, l.expires_at
  )
  SELECT r.key, r.token, r.expires_at, v_now, false FROM renewed r
  UNION ALL
  -- Busy: a live term of this owner that someone else has locked.
  SELECT l.key, l.token, l.expires_at, v_now, true
  FROM (SELECT w.k, w.t FROM wanted w EXCEPT ALL SELECT x.key, x.token FROM locked x) AS d
  JOIN "pgfence".leases l ON l.key = d.k
  WHERE l.token = d.t AND l.owner = p_owner AND l.expires_at > v_now;
END
$$;

--
-- Name: server_incarnation(); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.server_incarnation(OUT system_id bigint, OUT timeline bigint, OUT started_at timestamp with time zone, OUT in_recovery boolean) RETURNS record
    LANGUAGE plpgsql
    AS $$
BEGIN
  system_id := "pgfence".server_system_id();
  started_at := pg_postmaster_start_time();
  in_recovery := pg_is_in_recovery();
  IF in_recovery THEN
    timeline := (pg_control_checkpoint()).timeline_id;
  ELSE
    timeline := "pgfence".server_timeline();
  END IF;
END
$$;

--
-- Name: server_system_id(); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.server_system_id() RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
  v_id text := current_setting('pgfence.system_identifier', true);
BEGIN
  IF v_id IS NULL OR v_id = '' THEN
    v_id := (pg_control_system()).system_identifier::text;
    PERFORM set_config('pgfence.system_identifier', v_id, false);
  END IF;
  RETURN v_id::bigint;
END
$$;

--
-- Name: server_timeline(); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.server_timeline() RETURNS bigint
    LANGUAGE sql
    AS $$
  SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$$;

--
-- Name: xact_release(text[], bigint[], text); Type: FUNCTION; Schema: pgfence; Owner: -
--

CREATE FUNCTION pgfence.xact_release(p_keys text[], p_tokens bigint[], p_owner text) RETURNS TABLE(key text, token bigint)
    LANGUAGE sql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
  DELETE FROM "pgfence".leases AS l
  USING unnest(p_keys, p_tokens) AS u(k, t)
  WHERE l.key = u.k AND l.token = u.t AND l.owner = p_owner
    AND l.expires_at > clock_timestamp()
  RETURNING l.key, l.token
$$;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: election_terms; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.election_terms (
    key text NOT NULL,
    token bigint NOT NULL,
    owner text NOT NULL,
    value text,
    began_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

--
-- Name: fence_token_counter; Type: SEQUENCE; Schema: pgfence; Owner: -
--

CREATE SEQUENCE pgfence.fence_token_counter
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    MAXVALUE 17592186044415
    CACHE 1;

--
-- Name: incarnation_seen; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE UNLOGGED TABLE pgfence.incarnation_seen (
    system_id bigint NOT NULL,
    timeline bigint NOT NULL,
    started_at timestamp with time zone NOT NULL,
    first_seen timestamp with time zone
);

--
-- Name: incarnations; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.incarnations (
    system_id bigint NOT NULL,
    timeline bigint NOT NULL,
    started_at timestamp with time zone NOT NULL,
    first_seen timestamp with time zone NOT NULL
);

--
-- Name: lease_holders; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.lease_holders (
    key text NOT NULL,
    token bigint NOT NULL,
    owner text NOT NULL,
    mode text NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    metadata jsonb,
    CONSTRAINT lease_holders_key_check CHECK (((char_length(key) >= 1) AND (char_length(key) <= 256))),
    CONSTRAINT lease_holders_mode_check CHECK ((mode = ANY (ARRAY['shared'::text, 'exclusive'::text])))
);

--
-- Name: lease_waiters; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.lease_waiters (
    id bigint NOT NULL,
    key text NOT NULL,
    owner text NOT NULL,
    mode text NOT NULL,
    permits integer,
    enqueued_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT lease_waiters_mode_check CHECK ((mode = ANY (ARRAY['shared'::text, 'exclusive'::text])))
);

--
-- Name: lease_waiters_id_seq; Type: SEQUENCE; Schema: pgfence; Owner: -
--

ALTER TABLE pgfence.lease_waiters ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME pgfence.lease_waiters_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: leases; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.leases (
    key text NOT NULL,
    owner text NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    metadata jsonb,
    holders integer,
    CONSTRAINT leases_key_check CHECK (((char_length(key) >= 1) AND (char_length(key) <= 256)))
);

--
-- Name: pgfence_migrations; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.pgfence_migrations (
    id integer NOT NULL,
    name character varying(255) NOT NULL,
    run_on timestamp without time zone NOT NULL
);

--
-- Name: pgfence_migrations_id_seq; Type: SEQUENCE; Schema: pgfence; Owner: -
--

CREATE SEQUENCE pgfence.pgfence_migrations_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: pgfence_migrations_id_seq; Type: SEQUENCE OWNED BY; Schema: pgfence; Owner: -
--

ALTER SEQUENCE pgfence.pgfence_migrations_id_seq OWNED BY pgfence.pgfence_migrations.id;

--
-- Name: token_epoch; Type: TABLE; Schema: pgfence; Owner: -
--

CREATE TABLE pgfence.token_epoch (
    one_row boolean DEFAULT true NOT NULL,
    base bigint NOT NULL,
    timeline bigint NOT NULL,
    system_id bigint,
    CONSTRAINT token_epoch_base_check CHECK ((base >= 0)),
    CONSTRAINT token_epoch_one_row_check CHECK (one_row),
    CONSTRAINT token_epoch_timeline_check CHECK ((timeline >= 0))
);

--
-- Name: pgfence_migrations id; Type: DEFAULT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.pgfence_migrations ALTER COLUMN id SET DEFAULT nextval('pgfence.pgfence_migrations_id_seq'::regclass);

--
-- Name: election_terms election_terms_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.election_terms
    ADD CONSTRAINT election_terms_pkey PRIMARY KEY (key, token);

--
-- Name: incarnation_seen incarnation_seen_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.incarnation_seen
    ADD CONSTRAINT incarnation_seen_pkey PRIMARY KEY (system_id, timeline, started_at);

--
-- Name: incarnations incarnations_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.incarnations
    ADD CONSTRAINT incarnations_pkey PRIMARY KEY (system_id, timeline, started_at);

--
-- Name: lease_holders lease_holders_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.lease_holders
    ADD CONSTRAINT lease_holders_pkey PRIMARY KEY (key, token);

--
-- Name: lease_waiters lease_waiters_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.lease_waiters
    ADD CONSTRAINT lease_waiters_pkey PRIMARY KEY (id);

--
-- Name: leases leases_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (key);

--
-- Name: pgfence_migrations pgfence_migrations_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.pgfence_migrations
    ADD CONSTRAINT pgfence_migrations_pkey PRIMARY KEY (id);

--
-- Name: token_epoch token_epoch_pkey; Type: CONSTRAINT; Schema: pgfence; Owner: -
--

ALTER TABLE ONLY pgfence.token_epoch
    ADD CONSTRAINT token_epoch_pkey PRIMARY KEY (one_row);

--
-- Name: lease_holders_expires_at_idx; Type: INDEX; Schema: pgfence; Owner: -
--

CREATE INDEX lease_holders_expires_at_idx ON pgfence.lease_holders USING btree (expires_at);

--
-- Name: lease_waiters_expires_at_idx; Type: INDEX; Schema: pgfence; Owner: -
--

CREATE INDEX lease_waiters_expires_at_idx ON pgfence.lease_waiters USING btree (expires_at);

--
-- Name: lease_waiters_key_idx; Type: INDEX; Schema: pgfence; Owner: -
--

CREATE INDEX lease_waiters_key_idx ON pgfence.lease_waiters USING btree (key, id);

--
-- Name: leases_expires_at_idx; Type: INDEX; Schema: pgfence; Owner: -
--

CREATE INDEX leases_expires_at_idx ON pgfence.leases USING btree (expires_at);

--
-- PostgreSQL database dump complete
--

