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
        WHERE l.key = p_key AND l.token = p_token AND l.expires_at > clock_timestamp()
        FOR SHARE
      )
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
-- Name: fence_token_counter; Type: SEQUENCE; Schema: pgfence; Owner: -
--

CREATE SEQUENCE pgfence.fence_token_counter
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    MAXVALUE 17592186044415
    CACHE 1;

SET default_tablespace = '';

SET default_table_access_method = heap;

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
-- Name: leases_expires_at_idx; Type: INDEX; Schema: pgfence; Owner: -
--

CREATE INDEX leases_expires_at_idx ON pgfence.leases USING btree (expires_at);

--
-- PostgreSQL database dump complete
--

