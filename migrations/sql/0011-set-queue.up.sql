-- pgfence schema, version 11: a waiting set of keys stands in the keys' queues.
--
-- acquire_lease_set as 0006 installed it takes a set only when every key admits a caller from
-- outside the queue: a key with any live waiter never does, so a set waited behind every
-- single-key waiter, and shared callers that came after an exclusive set went before it
-- (guarantee 11 did not hold for sets). This version gives a set that has to wait a place in
-- the queue (lease_waiters) of each key that keeps it waiting, as a single-key waiter has in
-- its key's:
--
-- - A key the set could have now gets no place while no key of it has kept the set waiting:
--   others may take it meanwhile (the set holds none of its keys while it waits).
-- - The places are taken together, in one transaction that holds every key's serialisation
--   lock, and kept together until the set is granted or gives up: a place on a key that has
--   become free stays (so a stream of callers on each of two keys cannot keep passing the set
--   on both by turns). When a key without a place starts to keep the set waiting, all its
--   places go and it takes new ones, together, on every key that has kept it waiting, at the
--   back of those queues; that happens at most once per key of the set. So for any two
--   waiters with places on the same keys, one took all its places before the other took any
--   (the second waited for the first's commit on a shared key's lock) and stands ahead of the
--   other in every queue where both stand: no two waiters are each ahead of the other, and
--   waiting for those ahead cannot go round in a circle (no deadlock).
-- - A place is admitted as a single-key waiter's is (lease_admits with the place's id): shared
--   callers that come after an exclusive set queue behind it on the key where it waits.
-- - A grant deletes the places; a refusal for a permit count deletes them; a set that gives up
--   calls leave_lease_queue for each.
--
-- p_waiters: the places the previous attempt returned (one per key, in p_keys's order, NULL for
-- a key without one), or NULL. p_queue_ttl_ms: how long a place lasts without a refresh; NULL
-- takes none (a try).
CREATE FUNCTION :PGFENCE_SCHEMA.acquire_lease_set(
  p_keys text[], p_owner text, p_ttl_ms double precision, p_metadata jsonb, p_mode text,
  p_waiters bigint[], p_queue_ttl_ms double precision
) RETURNS TABLE (
  key text, acquired boolean, token bigint, acquired_at timestamptz,
  expires_at timestamptz, db_now timestamptz, conflict text, held_permits integer,
  waiter bigint
)
LANGUAGE plpgsql VOLATILE AS $fn$
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
    PERFORM pg_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, v_lock);
  END LOOP;
  v_now := clock_timestamp();
  -- The set's places, all still there and live, or none of them.
  IF p_waiters IS NOT NULL THEN
    SELECT count(*)::integer INTO v_kept
    FROM unnest(p_keys, p_waiters) AS u(k, id)
    JOIN :PGFENCE_SCHEMA.lease_waiters w ON w.id = u.id AND w.key = u.k AND w.owner = p_owner
    WHERE w.expires_at > v_now;
    IF v_kept > 0 AND v_kept = (SELECT count(u.id) FROM unnest(p_waiters) AS u(id)) THEN
      v_places := p_waiters;
    ELSE
      FOR v_gone IN DELETE FROM :PGFENCE_SCHEMA.lease_waiters w
                    WHERE w.id = ANY (p_waiters) AND w.owner = p_owner RETURNING w.key LOOP
        PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_gone);
      END LOOP;
      -- Where the lost places stood, the set has kept waiting: it stands there again.
      v_sticky := p_waiters;
    END IF;
  END IF;
  FOR i IN 1 .. cardinality(p_keys) LOOP
    SELECT * INTO v_admit
    FROM :PGFENCE_SCHEMA.lease_admits(p_keys[i], p_mode, NULL, v_places[i], v_now);
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
      v_tokens[i] := :PGFENCE_SCHEMA.next_token();
      v_expires[i] := :PGFENCE_SCHEMA.lease_grant(p_keys[i], p_owner, v_tokens[i], p_ttl_ms,
                                                  p_metadata, p_mode, NULL, v_group_live[i], v_now);
    END LOOP;
  END IF;
  IF NOT v_blocked OR v_conflict OR p_queue_ttl_ms IS NULL THEN
    IF v_places IS NOT NULL AND v_blocked THEN
      -- Given up (a permit count refused, or a try): wake those behind the places.
      PERFORM :PGFENCE_SCHEMA.leave_lease_queue(u.id) FROM unnest(v_places) AS u(id)
      WHERE u.id IS NOT NULL;
    ELSIF v_places IS NOT NULL THEN
      -- Granted: the set now holds the keys, so nobody behind its places can go yet.
      DELETE FROM :PGFENCE_SCHEMA.lease_waiters w WHERE w.id = ANY (v_places);
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
        PERFORM :PGFENCE_SCHEMA.leave_lease_queue(u.id) FROM unnest(v_places) AS u(id)
        WHERE u.id IS NOT NULL;
        v_sticky := v_places;
      END IF;
      v_places := NULL;
      FOR i IN 1 .. cardinality(p_keys) LOOP
        IF v_is_blocked[i] OR v_sticky[i] IS NOT NULL THEN
          INSERT INTO :PGFENCE_SCHEMA.lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
          VALUES (p_keys[i], p_owner, p_mode, NULL, v_now,
                  v_now + p_queue_ttl_ms * interval '1 millisecond')
          RETURNING id INTO v_place;
          v_places[i] := v_place;
        END IF;
      END LOOP;
    ELSE
      UPDATE :PGFENCE_SCHEMA.lease_waiters w
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
$fn$;
