-- pgfence schema, version 4: job-queue claiming at the cost of its job.
--
-- claim_candidates: the second half of the claim statement for claim({ from }). The candidates
-- it gets are already locked (FOR UPDATE SKIP LOCKED by the caller's query), already free of
-- live leases, and at most `limit` of them, so it takes them set-based, in one INSERT (and one
-- UPDATE for keys whose old lease expired) instead of claim_leases's four statements per key.
--
-- Take each of p_keys that is free or whose lease expired, skipping every key that is busy,
-- and return the leases taken, in p_keys's order. "Busy": another transaction is acquiring it
-- (its serialisation lock is held), or its expired row is locked by someone (a guarded write,
-- a renewal, a release or the reaper in flight; a completion's xact_release), or it has a live
-- lease (one taken since the caller's candidates were read). Busy keys are skipped, never
-- waited for.
--
-- Tokens: the serialisation locks are taken first, in the MATERIALIZED CTE, for every key
-- before any token is drawn, so each token is drawn while this transaction is the only
-- acquirer of its key (as in acquire_leases). An INSERT whose key turns out to exist (a lease
-- committed after this statement's snapshot) does nothing and only wastes a token.
-- synchronous_commit is forced on: a token must never be reissued after a crash.
CREATE FUNCTION :PGFENCE_SCHEMA.claim_candidates(
  p_keys text[], p_owner text, p_ttl_ms double precision
) RETURNS TABLE (key text, token bigint, acquired_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
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
    WHERE pg_try_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, hashtext(u.k))
  ),
  expired AS MATERIALIZED (
    SELECT l.key FROM :PGFENCE_SCHEMA.leases l JOIN candidates c ON l.key = c.k
    WHERE l.expires_at <= v_now
    FOR NO KEY UPDATE OF l SKIP LOCKED
  ),
  taken_over AS (
    UPDATE :PGFENCE_SCHEMA.leases AS l
    SET owner = p_owner, token = :PGFENCE_SCHEMA.next_token(), acquired_at = v_now,
        expires_at = v_now + p_ttl_ms * interval '1 millisecond', metadata = NULL
    FROM expired e
    WHERE l.key = e.key AND l.expires_at <= v_now
    RETURNING l.key, l.token, l.acquired_at, l.expires_at
  ),
  inserted AS (
    INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
    SELECT c.k, p_owner, :PGFENCE_SCHEMA.next_token(), v_now,
           v_now + p_ttl_ms * interval '1 millisecond', NULL
    FROM candidates c
    WHERE NOT EXISTS (SELECT 1 FROM :PGFENCE_SCHEMA.leases x WHERE x.key = c.k)
    ORDER BY c.ord
    ON CONFLICT ON CONSTRAINT leases_pkey DO NOTHING
    RETURNING l.key, l.token, l.acquired_at, l.expires_at
  )
  SELECT t.key, t.token, t.acquired_at, t.expires_at
  FROM (SELECT * FROM taken_over UNION ALL SELECT * FROM inserted) t
  JOIN candidates c ON c.k = t.key
  ORDER BY c.ord;
END
$fn$;

-- xact_release: delete the terms (key, token) that p_owner still holds, by the database clock,
-- and return them. Meant for the caller's own transaction: the deleted rows stay locked until
-- it ends, so nobody can take a key over before the caller's work on it commits; if it rolls
-- back, the leases are as they were and run out their TTL.
--
-- No NOTIFY: a lease released with its work done frees no task, and a notifying commit queues
-- on PostgreSQL's one notification lock, which every completion would then pay for.
-- The caller's synchronous_commit is left alone: the commit is the caller's work's.
CREATE FUNCTION :PGFENCE_SCHEMA.xact_release(p_keys text[], p_tokens bigint[], p_owner text)
RETURNS TABLE (key text, token bigint)
LANGUAGE sql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
  DELETE FROM :PGFENCE_SCHEMA.leases AS l
  USING unnest(p_keys, p_tokens) AS u(k, t)
  WHERE l.key = u.k AND l.token = u.t AND l.owner = p_owner
    AND l.expires_at > clock_timestamp()
  RETURNING l.key, l.token
$fn$;
