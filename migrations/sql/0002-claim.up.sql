-- pgfence schema, version 2 (migration 1764130000001_claim): claim_leases, which takes up to
-- N free keys out of a list of candidates without ever waiting for another acquirer (job-queue
-- claiming, shard ownership).
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql. :PGFENCE_ACQUIRE_CLASS_ID is the class id acquire_leases
-- uses: claimers and lease() acquirers of a key queue on the same
-- pg_advisory_xact_lock(class id, hashtext(key)).
--
-- Take up to p_limit of p_keys, in order, skipping every key that is busy, and return the
-- leases taken. "Busy" means: another transaction is acquiring it right now (its
-- serialisation lock is held: pg_try_advisory_xact_lock fails), or it has a live lease, or its
-- lease row is locked by someone (a renewal, a release or reaper in flight, a guarded write
-- holding is_current's FOR SHARE). Each of those is skipped rather than waited for, so
-- claimers never queue behind each other or behind a holder's transaction.
--
-- A token is drawn only once this transaction holds the key's serialisation lock (and, for
-- an existing row, the row lock), as in acquire_leases: for one key, tokens reach the table
-- in the order they were drawn. Each statement below reads a fresh snapshot (READ COMMITTED),
-- so a lease committed a moment ago by another acquirer is seen.
-- synchronous_commit is forced on: a token must never be reissued after a crash.
CREATE FUNCTION :PGFENCE_SCHEMA.claim_leases(
  p_keys text[], p_owner text, p_ttl_ms double precision, p_limit integer
) RETURNS TABLE (
  key text, token bigint, acquired_at timestamptz, expires_at timestamptz, db_now timestamptz
)
LANGUAGE plpgsql VOLATILE AS $fn$
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
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(:PGFENCE_ACQUIRE_CLASS_ID, hashtext(v_key));

        SELECT l.expires_at INTO v_expires FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
          v_now := clock_timestamp();
          CONTINUE WHEN v_expires > v_now;
          UPDATE :PGFENCE_SCHEMA.leases AS l
          SET owner = p_owner, token = nextval(':PGFENCE_SCHEMA.fence_tokens'), acquired_at = v_now,
              expires_at = v_now + p_ttl_ms * interval '1 millisecond', metadata = NULL
          WHERE l.key = v_key
          RETURNING l.key, l.token, l.acquired_at, l.expires_at
          INTO key, token, acquired_at, expires_at;
        ELSE
          -- No row, or a row someone else has locked: only the first may be taken.
          PERFORM 1 FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key;
          CONTINUE WHEN FOUND;
          v_now := clock_timestamp();
          INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
          VALUES (v_key, p_owner, nextval(':PGFENCE_SCHEMA.fence_tokens'), v_now,
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
    $fn$;
