-- pgfence schema, version 1 (migration 1764130000000_leases): the leases table, the
-- fencing-token sequence and the functions that acquire, renew, release and check leases in one
-- round trip each.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders, filled by migrations/lib/sql-file.js at migration time:
--   :PGFENCE_SCHEMA             the schema, as a quoted identifier. Every object is qualified
--                               with it, so the functions resolve names without depending on the
--                               search_path of whoever calls them.
--   :PGFENCE_ACQUIRE_CLASS_ID   the int4 class id under which acquirers of one key serialise
--                               (pg_advisory_xact_lock(int4, int4)), derived from the schema name.
--   :PGFENCE_RELEASED_CHANNEL   the NOTIFY channel releases wake waiters on, as a literal.
--
-- The functions below run with generic plans: for the few keys of a typical call their
-- statements are keyed lookups, and PostgreSQL would otherwise re-plan them on every call,
-- which measured as a third of an acquire's cost on a table with 100,000 leases. A call with
-- more than 32 keys (a process renewing or releasing thousands of leases at once) switches back
-- to custom plans, whose real array sizes give hash joins instead of nested loops; the switch
-- ends with the function (its SET clause restores the setting on exit).

CREATE TABLE :PGFENCE_SCHEMA.leases (
  key         text        PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 256),
  owner       text        NOT NULL,
  token       bigint      NOT NULL,
  acquired_at timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  metadata    jsonb
);

-- The reaper and the "who holds what" views look rows up by expiry.
CREATE INDEX leases_expires_at_idx ON :PGFENCE_SCHEMA.leases (expires_at);

-- Fencing tokens. NO CYCLE: a token that wraps around is no token. The sequence is WAL-logged
-- ahead of use and acquiring commits synchronously, so a crash never makes it go back.
CREATE SEQUENCE :PGFENCE_SCHEMA.fence_tokens AS bigint MINVALUE 1 NO MAXVALUE NO CYCLE;

-- True only while (key, token) is the live lease, by the database clock. FOR SHARE holds the
-- lease row until the caller's transaction ends: a guarded write
--   UPDATE t SET … WHERE id = $1 AND pgfence.is_current($2, $3)
-- then commits before any new holder can take the key over, never after.
CREATE FUNCTION :PGFENCE_SCHEMA.is_current(p_key text, p_token bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT AS $fn$
      SELECT EXISTS (
        SELECT 1 FROM :PGFENCE_SCHEMA.leases l
        WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
        FOR SHARE
      )
    $fn$;

-- Acquire any of p_keys that are free or expired, in one statement and one commit.
-- Returns a row per distinct key: acquired, and then this term's token and expiry; or not,
-- and then the current holder's expiry (null if none), to time the next attempt.
--
-- Tokens are drawn only after this transaction holds the per-key serialisation lock, so
-- for any one key tokens reach the table in the order they were drawn (a token drawn
-- before serialising, e.g. in an INSERT's VALUES, could land after a larger one).
-- Locks are taken in a fixed order so two multi-key acquirers never deadlock.
-- synchronous_commit is forced on: a token must never be reissued after a crash.
CREATE FUNCTION :PGFENCE_SCHEMA.acquire_leases(
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

-- Extend leases, each scoped to its own term: a holder whose token was superseded, or whose
-- lease already expired by the database clock, renews nothing. Durable, like acquiring:
-- a renewal lost in a crash would let the lease expire earlier than its holder was told.
-- A renewal never shortens a lease (greatest): two renewals of one term that cross (an
-- auto-renewal and an explicit extend) then leave the later expiry either promised.
--
-- With p_skip_locked, a term whose row someone else has locked (typically a guarded write
-- holding is_current's FOR SHARE until it commits) is not waited for: it comes back with
-- busy = true, to be renewed again shortly. One statement renews many holders' leases, and
-- one row's wait must not hold up (and at worst cost) all the others. Without it, the
-- statement waits for such rows, as any UPDATE does, and busy is always false.
CREATE FUNCTION :PGFENCE_SCHEMA.renew_leases(
  p_keys text[], p_tokens bigint[], p_ttl_ms double precision[],
  p_skip_locked boolean DEFAULT false
)
RETURNS TABLE (key text, token bigint, expires_at timestamptz, db_now timestamptz, busy boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
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
        UPDATE :PGFENCE_SCHEMA.leases AS l
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
        SELECT l.key FROM :PGFENCE_SCHEMA.leases l
        JOIN wanted w ON l.key = w.k AND l.token = w.t
        WHERE l.expires_at > v_now
        FOR NO KEY UPDATE OF l SKIP LOCKED
      ),
      renewed AS (
        UPDATE :PGFENCE_SCHEMA.leases AS l
        SET expires_at = greatest(l.expires_at, v_now + w.ttl * interval '1 millisecond')
        FROM wanted w, locked x
        WHERE l.key = w.k AND l.token = w.t AND l.expires_at > v_now AND x.key = l.key
        RETURNING l.key, l.token, l.expires_at
      )
      SELECT r.key, r.token, r.expires_at, v_now, false FROM renewed r
      UNION ALL
      SELECT l.key, l.token, l.expires_at, v_now, true
      FROM :PGFENCE_SCHEMA.leases l
      JOIN wanted w ON l.key = w.k AND l.token = w.t
      WHERE l.expires_at > v_now AND NOT EXISTS (SELECT 1 FROM locked x WHERE x.key = l.key);
    END
    $fn$;

-- Release leases, each scoped to its own term, and wake waiters through NOTIFY (sent at
-- commit). The commit need not be durable: a release lost in a crash only means the lease
-- runs out its TTL, which every waiter already allows for.
--
-- With p_skip_locked, a term whose row someone else has locked (a guarded write holding
-- is_current's FOR SHARE until it commits) is not waited for but returned with busy = true,
-- to be released on its own: one statement releases many callers' leases, and one row's wait
-- must not hold up the others. Without it, the statement waits, and busy is always false.
CREATE FUNCTION :PGFENCE_SCHEMA.release_leases(
  p_keys text[], p_tokens bigint[], p_skip_locked boolean DEFAULT false
)
RETURNS TABLE (key text, token bigint, busy boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
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
            SELECT l.key, l.token FROM :PGFENCE_SCHEMA.leases l
            JOIN wanted w ON l.key = w.k AND l.token = w.t
            FOR UPDATE OF l SKIP LOCKED
          ),
          gone AS (
            DELETE FROM :PGFENCE_SCHEMA.leases AS l USING locked x
            WHERE l.key = x.key AND l.token = x.token
            RETURNING l.key, l.token
          )
          SELECT g.key, g.token, false FROM gone g
          UNION ALL
          SELECT l.key, l.token, true FROM :PGFENCE_SCHEMA.leases l
          JOIN wanted w ON l.key = w.k AND l.token = w.t
          WHERE NOT EXISTS (SELECT 1 FROM locked x WHERE x.key = l.key)
        LOOP
          IF NOT v_busy THEN
            PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
          END IF;
          key := v_key;
          token := v_token;
          busy := v_busy;
          RETURN NEXT;
        END LOOP;
        RETURN;
      END IF;
      FOR v_key, v_token IN
        DELETE FROM :PGFENCE_SCHEMA.leases AS l
        USING unnest(p_keys, p_tokens) AS u(k, t)
        WHERE l.key = u.k AND l.token = u.t
        RETURNING l.key, l.token
      LOOP
        PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
        key := v_key;
        token := v_token;
        busy := false;
        RETURN NEXT;
      END LOOP;
    END
    $fn$;
