-- Reverts 0003-tokens-terms.up.sql. The old sequence comes back above every token issued
-- (it starts at a token drawn now), so tokens keep growing per key after the downgrade too.
CREATE SEQUENCE :PGFENCE_SCHEMA.fence_tokens AS bigint MINVALUE 1 NO MAXVALUE NO CYCLE;
SELECT setval(':PGFENCE_SCHEMA.fence_tokens', :PGFENCE_SCHEMA.next_token());

-- Versions 1 and 2 of the acquiring functions, as they were.
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
        SELECT l.expires_at INTO v_expires FROM :PGFENCE_SCHEMA.leases l WHERE l.key = v_key;
        IF NOT FOUND THEN
          -- Free. The token is drawn now, under the key's serialisation lock.
          INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
          VALUES (v_key, p_owner, nextval(':PGFENCE_SCHEMA.fence_tokens'), v_now,
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
        SET owner = p_owner, token = nextval(':PGFENCE_SCHEMA.fence_tokens'), acquired_at = v_now,
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
      ),
      taken AS (
        INSERT INTO :PGFENCE_SCHEMA.leases AS l (key, owner, token, acquired_at, expires_at, metadata)
        SELECT f.k, p_owner, nextval(':PGFENCE_SCHEMA.fence_tokens'), v_now,
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

CREATE OR REPLACE FUNCTION :PGFENCE_SCHEMA.claim_leases(
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

DROP FUNCTION :PGFENCE_SCHEMA.release_leases(text[], bigint[], text, boolean);
DROP FUNCTION :PGFENCE_SCHEMA.renew_leases(text[], bigint[], text, double precision[], boolean);
DROP FUNCTION :PGFENCE_SCHEMA.next_token();
DROP FUNCTION :PGFENCE_SCHEMA.server_system_id();
DROP FUNCTION :PGFENCE_SCHEMA.server_timeline();
DROP TABLE :PGFENCE_SCHEMA.token_epoch;
DROP SEQUENCE :PGFENCE_SCHEMA.fence_token_counter;
