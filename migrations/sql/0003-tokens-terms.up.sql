-- pgfence schema, version 3 (migration 1764130000002_tokens_terms): fencing tokens that stay
-- monotonic across any failover.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- ## Tokens: an epoch in the high bits, a counter in the low bits
--
--   token = epoch * 2^44 + counter      epoch = base + timeline,  1 <= counter < 2^44
--
-- * timeline is the server's current timeline ID (server_timeline() below). PostgreSQL gives a
--   promoted standby a timeline ID greater than that of the timeline it was following, and
--   writes all its new WAL on it from then on.
-- * counter is nextval of fence_token_counter: bigint, NO CYCLE, MAXVALUE 2^44 - 1.
-- * base is 0 until the cluster is rebuilt (below). token_epoch keeps it with the timeline and
--   the cluster (pg_control_system()'s system identifier) of the last token drawn.
--
-- Claim: every token a server draws after a promotion is larger than every token drawn before
-- it on the history it descends from, whatever replication lost; and per key, tokens stay
-- strictly increasing across this migration. Proof:
--  1. token is order-preserving in (epoch, counter): counter < 2^44, so a larger epoch gives a
--     larger token whatever the counters, and within one epoch the counter decides.
--  2. Within one epoch on one server the counter strictly increases in draw order: a sequence
--     that never cycles; it is WAL-logged ahead of use and acquiring commits synchronously, so
--     a crash restart (which keeps the timeline) resumes above every token it acknowledged.
--     For one key, tokens reach the table in draw order (drawn under the key's serialisation
--     lock, see acquire_leases), so per key they strictly increase.
--  3. token_epoch (base, timeline, cluster) changes only when a draw finds the server on another
--     timeline or cluster than recorded, and then base + timeline strictly grows: a later
--     timeline of the same cluster keeps base; anything else (another cluster, or an earlier
--     timeline) adds the recorded timeline to base. The epoch drawn is base + timeline after
--     that change, so every epoch drawn under a recorded state is <= the base + timeline of any
--     later state.
--  4. Promotion. The old primary was on (cluster C, timeline T); PostgreSQL moves the promoted
--     standby to T' > T, on C. Its copy of token_epoch is some state r the old history wrote,
--     perhaps not the newest: after r the old primary changed it at most once (to (C, T): then
--     nothing on T changes it again), so every epoch drawn before the promotion is <= b + t of r
--     if it did not, else the epoch of that last change. Case r = (b, t, C) with t < T' (t <= T,
--     t is a timeline of C's history): the new epoch is b + T'; the lost change, if any, was to
--     a later timeline T > t (base kept: epochs b + T < b + T') — an earlier one would be a
--     history going backwards on one cluster, not a promotion. Case r's cluster is not C (the old
--     primary's first change after a rebuild was lost): that change gave epochs b + t + T, and
--     the new primary makes it b + t + T' > b + t + T. What replication lost of the counter cannot
--     matter: by 1, the epoch decides.
--  5. Rebuilds: pg_upgrade (which starts the new cluster on timeline 1) or a dump restored into a
--     new cluster change the system identifier. The leases, the counter and token_epoch come
--     along; the first draw adds the recorded timeline to base, so by 3 its epoch exceeds every
--     epoch drawn before, on whatever timeline the new cluster starts.
--  6. Upgrading from version 2: its tokens are plain values of the old fence_tokens sequence.
--     This migration locks that sequence (ALTER SEQUENCE waits for every transaction that drew
--     from it and blocks new draws), refuses to run if it ever passed 2^44 - 1, carries its value
--     over to the counter and drops it. Every old token is then < 2^44 <= every new one (epoch
--     >= 1); a call of an old function version still in flight fails (no such sequence) rather
--     than draw a small token after a large one.

-- Reading the timeline. pg_walfile_name(pg_current_wal_lsn()) names the WAL file being written
-- now, on the server's insert timeline: checked on a real standby (pg_basebackup, pg_ctl
-- promote, PostgreSQL 15), it read timeline 2 in the first query after the promotion. The other
-- candidate, pg_control_checkpoint().timeline_id, is the timeline of the last checkpoint: after
-- a fast promotion it stays at the old timeline until the end-of-recovery checkpoint finishes
-- (still 1 twelve seconds after promoting, that checkpoint spread by checkpoint_completion_target),
-- and a token drawn meanwhile would reuse the old timeline's epoch with a counter that may have
-- gone back: wrong. Both are executable by any role (PUBLIC), no superuser needed. On a standby
-- pg_current_wal_lsn() fails, but the counter is drawn first and fails as a read-only
-- transaction (25006), as any write there does.
--
-- Limits. 2^44 - 1 = 17,592,186,044,415 tokens per installation (55 years at 10,000 acquisitions
-- a second); after that acquiring fails with SQLSTATE 2200H (the sequence's limit), never a
-- wrap. Epochs up to 2^19 - 1 = 524,287 (promotions and rebuilds); past that acquiring fails
-- with 22003. So a token never passes 2^63 - 1.
-- Not covered: a server promoted onto a timeline that is not greater than one that issued
-- tokens its clients still hold. PostgreSQL picks the next timeline from the history it knows:
-- two standbys both promoted from timeline T without a shared WAL archive both choose T + 1
-- (a split brain), and a data directory restored from a file-system snapshot without archive
-- recovery keeps its old timeline. Promote one standby, and let the others follow it.
-- The counter: the low bits of every token from now on (point 6 above: it takes over from
-- fence_tokens, whose draws this first waits out and then blocks until the end of the migration).
ALTER SEQUENCE :PGFENCE_SCHEMA.fence_tokens MAXVALUE 17592186044415;
CREATE SEQUENCE :PGFENCE_SCHEMA.fence_token_counter
  AS bigint MINVALUE 1 MAXVALUE 17592186044415 NO CYCLE;
SELECT setval(':PGFENCE_SCHEMA.fence_token_counter', last_value, is_called)
FROM :PGFENCE_SCHEMA.fence_tokens;
DROP SEQUENCE :PGFENCE_SCHEMA.fence_tokens;

-- The one row that makes epochs survive a rebuild (points 3 to 5): base, the highest timeline seen
-- since base last changed, and the cluster (pg_control_system's system identifier) it was seen
-- on. Written only when one of those changes: at the first token after a promotion or a rebuild.
CREATE TABLE :PGFENCE_SCHEMA.token_epoch (
  one_row     boolean PRIMARY KEY DEFAULT true CHECK (one_row),
  base        bigint  NOT NULL CHECK (base >= 0),
  timeline    bigint  NOT NULL CHECK (timeline >= 0),
  system_id   bigint
);
INSERT INTO :PGFENCE_SCHEMA.token_epoch (base, timeline, system_id) VALUES (0, 0, NULL);

-- The timeline WAL is written on now (see "Reading the timeline" above). A function of its own
-- so a test can stand a fake timeline in for it; nothing else should call it.
CREATE FUNCTION :PGFENCE_SCHEMA.server_timeline() RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
  SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$fn$;

-- This cluster's system identifier, read from pg_control once per session (reading it costs
-- ~40 µs, a token ~3 µs): it cannot change while the server runs.
CREATE FUNCTION :PGFENCE_SCHEMA.server_system_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_id text := current_setting('pgfence.system_identifier', true);
BEGIN
  IF v_id IS NULL OR v_id = '' THEN
    v_id := (pg_control_system()).system_identifier::text;
    PERFORM set_config('pgfence.system_identifier', v_id, false);
  END IF;
  RETURN v_id::bigint;
END
$fn$;

-- The next fencing token (see the proof above). Every token pgfence issues is drawn here, only
-- once the caller is the only acquirer of its key. SECURITY DEFINER: any role that may acquire
-- may draw, without grants on the counter and token_epoch (a role granted today's objects keeps
-- working after the upgrade).
CREATE FUNCTION :PGFENCE_SCHEMA.next_token() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  -- First: on a standby this fails as a read-only transaction, as any write there does.
  v_counter bigint := nextval(':PGFENCE_SCHEMA.fence_token_counter');
  v_timeline bigint := :PGFENCE_SCHEMA.server_timeline();
  v_system bigint := :PGFENCE_SCHEMA.server_system_id();
  v_epoch bigint;
BEGIN
  SELECT e.base + e.timeline INTO v_epoch FROM :PGFENCE_SCHEMA.token_epoch e
  WHERE e.timeline = v_timeline AND e.system_id = v_system;
  IF NOT FOUND THEN
    -- A new timeline or a new cluster: record it, once. Concurrent drawers queue on the row;
    -- the losers find it recorded (READ COMMITTED re-checks the WHERE) and read it.
    UPDATE :PGFENCE_SCHEMA.token_epoch e
    SET base = CASE WHEN e.system_id IS NOT DISTINCT FROM v_system AND v_timeline > e.timeline
                    THEN e.base ELSE e.base + e.timeline END,
        timeline = v_timeline,
        system_id = v_system
    WHERE (e.timeline, e.system_id) IS DISTINCT FROM (v_timeline, v_system)
    RETURNING e.base + e.timeline INTO v_epoch;
    IF NOT FOUND THEN
      SELECT e.base + e.timeline INTO STRICT v_epoch FROM :PGFENCE_SCHEMA.token_epoch e;
    END IF;
  END IF;
  IF v_epoch NOT BETWEEN 1 AND 524287 THEN
    RAISE EXCEPTION 'pgfence: fencing-token epoch % is out of range (1 to 524287)', v_epoch
      USING ERRCODE = '22003';
  END IF;
  RETURN v_epoch * 17592186044416 + v_counter;
END
$fn$;

-- The acquiring functions of versions 1 and 2, unchanged but for the token: next_token().
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
          SET owner = p_owner, token = :PGFENCE_SCHEMA.next_token(), acquired_at = v_now,
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
          VALUES (v_key, p_owner, :PGFENCE_SCHEMA.next_token(), v_now,
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

-- ## Renew and release: one term, matched by owner too, at O(N) cost
--
-- A term is (key, token, owner): a holder whose row was replaced by another holder's learns it
-- at its next renewal, even if a token were ever seen twice. The versions 1 signatures without
-- an owner stay, unchanged, for processes still running an older pgfence during a rolling
-- upgrade (dropping them would cost those processes every lease at once); this library no
-- longer calls them, and a later migration drops them.
--
-- Cost. Renewing or releasing N leases must cost O(N) whatever the planner's statistics say.
-- Once the table is analyzed the planner estimates one row for a (key, token) join (both
-- columns are unique), and the version 1 statements then joined two CTE scans by nested loop:
-- O(N^2), 14.5 s to renew 10,000 leases. Here no join is ever between two index-less row sets:
-- `locked` carries each term's ttl, so the UPDATE / DELETE joins only `locked` to leases by
-- the primary key (a nested loop is then an index probe per row: linear), and the busy terms
-- are a set difference (EXCEPT ALL: hashed or sorted, never a nested loop) probed by primary
-- key. The plan shape is checked by test/integration/renew-scale.test.ts.

-- Extend leases, each scoped to its own term; otherwise as version 1 (durable, never shortens,
-- p_skip_locked reports a row someone else has locked as busy instead of waiting for it).
CREATE FUNCTION :PGFENCE_SCHEMA.renew_leases(
  p_keys text[], p_tokens bigint[], p_owner text, p_ttl_ms double precision[],
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
      JOIN :PGFENCE_SCHEMA.leases l ON l.key = u.k
      WHERE l.token = u.t AND l.owner = p_owner AND l.expires_at > v_now
      FOR NO KEY UPDATE OF l
    )
    UPDATE :PGFENCE_SCHEMA.leases AS l
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
    JOIN :PGFENCE_SCHEMA.leases l ON l.key = w.k
    WHERE l.token = w.t AND l.owner = p_owner AND l.expires_at > v_now
    FOR NO KEY UPDATE OF l SKIP LOCKED
  ),
  renewed AS (
    UPDATE :PGFENCE_SCHEMA.leases AS l
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
  JOIN :PGFENCE_SCHEMA.leases l ON l.key = d.k
  WHERE l.token = d.t AND l.owner = p_owner AND l.expires_at > v_now;
END
$fn$;

-- Release leases, each scoped to its own term, and wake waiters through NOTIFY (sent at
-- commit); otherwise as version 1 (not durable, p_skip_locked reports busy rows).
CREATE FUNCTION :PGFENCE_SCHEMA.release_leases(
  p_keys text[], p_tokens bigint[], p_owner text, p_skip_locked boolean DEFAULT false
)
RETURNS TABLE (key text, token bigint, busy boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
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
        JOIN :PGFENCE_SCHEMA.leases l ON l.key = u.k
        WHERE l.token = u.t AND l.owner = p_owner
        FOR UPDATE OF l
      )
      DELETE FROM :PGFENCE_SCHEMA.leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    LOOP
      PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
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
      JOIN :PGFENCE_SCHEMA.leases l ON l.key = w.k
      WHERE l.token = w.t AND l.owner = p_owner
      FOR UPDATE OF l SKIP LOCKED
    ),
    gone AS (
      DELETE FROM :PGFENCE_SCHEMA.leases AS l USING locked x
      WHERE l.key = x.key AND l.token = x.token
      RETURNING l.key, l.token
    )
    SELECT g.key, g.token, false FROM gone g
    UNION ALL
    -- Busy: a term of this owner that someone else has locked.
    SELECT l.key, l.token, true
    FROM (SELECT w.k, w.t FROM wanted w EXCEPT ALL SELECT x.key, x.token FROM locked x) AS d
    JOIN :PGFENCE_SCHEMA.leases l ON l.key = d.k
    WHERE l.token = d.t AND l.owner = p_owner
  LOOP
    IF NOT v_busy THEN
      PERFORM pg_notify(:PGFENCE_RELEASED_CHANNEL, v_key);
    END IF;
    key := v_key;
    token := v_token;
    busy := v_busy;
    RETURN NEXT;
  END LOOP;
END
$fn$;
