-- pgfence schema (migration 1764130000006_incarnations): the lock-delay of advisory locks.
--
-- Append-only: never edit a migration that has shipped; add a new one instead.
-- Placeholders as in 0001-leases.up.sql.
--
-- Why. An advisory lock lives in the memory of the server that granted it. When that server's
-- incarnation ends — a standby is promoted because the primary's host died, or the server
-- restarts after a crash — the server clients reach next holds none of the old locks, and
-- would grant them again at once. Holders whose connections were reset learn of the loss in
-- milliseconds, but a holder whose socket went silent (a dead host, a partition) learns it only
-- from its liveness probe, and until then still believes it holds its keys. So pgfence grants
-- no advisory lock on a new incarnation until the old holders must have noticed: a lock-delay,
-- as Chubby has. advisory_grant_delay() tells a session how long that still is; the client
-- waits it out before the session's first grant (src/advisory/lock-delay.ts).
--
-- An incarnation is (cluster, timeline, postmaster start):
-- * a promotion moves the server onto a new timeline, under the same postmaster;
-- * a restart (a clean one, or a host's after a crash) gives a new postmaster start time;
-- * a crash of one server process is the third case: the postmaster throws away shared memory
--   (and every advisory lock with it) and recovers, while both the timeline and
--   pg_postmaster_start_time() stay as they were (checked on PostgreSQL 15 with
--   restart_after_crash = on). incarnation_seen is UNLOGGED for that case: crash recovery
--   empties unlogged tables, so the incarnation's row is gone and the next caller records a new
--   first sight. A promoted standby's unlogged tables start out empty too; a clean shutdown
--   keeps them (and the next start has a start time of its own).
--
-- The delay counts from the first time a pgfence session saw the incarnation, by the database
-- clock. Every holder on the old incarnation was granted its locks, and last heard from its
-- server, before that server went away, and the new incarnation can only be seen after that;
-- so a holder that notices a silent connection within the delay has noticed before the first
-- grant.
--
-- No delay where there can be no old holder: when no advisory session of this schema was ever
-- opened on an earlier incarnation (`incarnations`, a logged table that replicates, is empty),
-- as on a freshly installed schema or a server started for the first time. Otherwise every
-- new pgfence service, test run or demo would wait out the delay before its first lock. The
-- row that ends this is written, at the schema's first advisory session, with local commit
-- only (below); a failover that loses it (asynchronous replication, within the replication
-- lag of that very first session) leaves the next incarnation without a delay.
--
-- Not covered: two servers granting at once (a split brain, or a standby used for advisory
-- locks beside its primary: their locks never excluded each other); code that takes
-- pg_advisory_lock itself rather than through pgfence; holders of a pgfence without this
-- migration; and a standby's own crash-restart of shared memory (below).

-- Every incarnation an advisory session of this schema was opened on (one row each).
CREATE TABLE :PGFENCE_SCHEMA.incarnations (
  system_id  bigint      NOT NULL,
  timeline   bigint      NOT NULL,
  started_at timestamptz NOT NULL,
  first_seen timestamptz NOT NULL,
  PRIMARY KEY (system_id, timeline, started_at)
);

-- The first sight of the incarnation running now: emptied by crash recovery and promotion.
-- first_seen is NULL when there was nothing before it to wait for (no row in incarnations).
CREATE UNLOGGED TABLE :PGFENCE_SCHEMA.incarnation_seen (
  system_id  bigint      NOT NULL,
  timeline   bigint      NOT NULL,
  started_at timestamptz NOT NULL,
  first_seen timestamptz,
  PRIMARY KEY (system_id, timeline, started_at)
);

-- The server's incarnation, readable by any role (pg_postmaster_start_time, pg_walfile_name,
-- pg_current_wal_lsn and pg_control_checkpoint are executable by PUBLIC).
-- The timeline is server_timeline() (0003-tokens-terms.up.sql): the timeline WAL is inserted on.
-- On a primary right after a promotion it is already the new one; checked again for this
-- migration on PostgreSQL 15 (pg_basebackup, pg_ctl promote): the first query after the
-- promotion read timeline 2 there, while pg_control_checkpoint().timeline_id still read 1 five
-- seconds later, until the end-of-recovery checkpoint finished. An incarnation keyed by the
-- checkpoint's timeline would look unchanged after a promotion, and grant at once. During
-- recovery pg_current_wal_lsn() cannot be called; a standby reports its last restartpoint's
-- timeline, for information only (nothing is recorded on a standby).
CREATE FUNCTION :PGFENCE_SCHEMA.server_incarnation(
  OUT system_id bigint, OUT timeline bigint, OUT started_at timestamptz, OUT in_recovery boolean
)
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  system_id := :PGFENCE_SCHEMA.server_system_id();
  started_at := pg_postmaster_start_time();
  in_recovery := pg_is_in_recovery();
  IF in_recovery THEN
    timeline := (pg_control_checkpoint()).timeline_id;
  ELSE
    timeline := :PGFENCE_SCHEMA.server_timeline();
  END IF;
END
$fn$;

-- Milliseconds still to wait before advisory locks may be granted on this incarnation: 0 once
-- p_delay_ms have passed since it was first seen (or since the postmaster started, whichever is
-- later: the first sight cannot be earlier unless the clock was set back), and 0 when no
-- advisory session of this schema was opened on an earlier incarnation. The first call on an
-- incarnation records its first sight; the later ones only read it.
-- SECURITY DEFINER: a role that may take advisory locks needs no privilege on the tables (a
-- role granted the objects of earlier versions keeps working).
-- * On a standby nothing can be written and an unlogged table cannot be read: the delay counts
--   from the postmaster's start. A standby's advisory locks are its own, and its restart ends
--   them all, which that covers; a crash of one of its processes (shared memory thrown away
--   under the same postmaster) is not covered.
-- * In a read-only transaction on a primary (default_transaction_read_only) the first sight
--   cannot be recorded either: the same fallback, so advisory locks keep working there, but a
--   promotion is then not delayed.
-- The writes need no synchronous commit: losing incarnation_seen's means a crash, which starts
-- a new incarnation anyway (incarnations: see "No delay" above); and waiting here for a
-- synchronous standby that is gone would hold up every advisory session after a failover.
CREATE FUNCTION :PGFENCE_SCHEMA.advisory_grant_delay(p_delay_ms double precision)
RETURNS double precision
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  v_at record;
  v_since timestamptz;
  v_now timestamptz;
BEGIN
  IF p_delay_ms IS NULL OR NOT (p_delay_ms >= 0 AND p_delay_ms <= 3600000) THEN
    RAISE EXCEPTION 'advisory_grant_delay: the delay must be 0 to 3600000 ms, got %', p_delay_ms
      USING ERRCODE = '22023';
  END IF;
  SELECT * INTO STRICT v_at FROM :PGFENCE_SCHEMA.server_incarnation();
  IF v_at.in_recovery THEN
    IF NOT EXISTS (SELECT 1 FROM :PGFENCE_SCHEMA.incarnations) THEN
      RETURN 0;
    END IF;
    v_since := v_at.started_at;
  ELSE
    SELECT s.first_seen INTO v_since FROM :PGFENCE_SCHEMA.incarnation_seen s
    WHERE s.system_id = v_at.system_id AND s.timeline = v_at.timeline
      AND s.started_at = v_at.started_at;
    IF NOT FOUND THEN
      BEGIN
        PERFORM set_config('synchronous_commit', 'local', true);
        v_now := clock_timestamp();
        -- Concurrent first callers: one inserts, the others wait for it and then read its row.
        INSERT INTO :PGFENCE_SCHEMA.incarnation_seen AS s (system_id, timeline, started_at, first_seen)
        VALUES (v_at.system_id, v_at.timeline, v_at.started_at,
                CASE WHEN EXISTS (SELECT 1 FROM :PGFENCE_SCHEMA.incarnations) THEN v_now END)
        ON CONFLICT ON CONSTRAINT incarnation_seen_pkey DO NOTHING;
        INSERT INTO :PGFENCE_SCHEMA.incarnations AS i (system_id, timeline, started_at, first_seen)
        VALUES (v_at.system_id, v_at.timeline, v_at.started_at, v_now)
        ON CONFLICT ON CONSTRAINT incarnations_pkey DO NOTHING;
        SELECT s.first_seen INTO STRICT v_since FROM :PGFENCE_SCHEMA.incarnation_seen s
        WHERE s.system_id = v_at.system_id AND s.timeline = v_at.timeline
          AND s.started_at = v_at.started_at;
      EXCEPTION WHEN read_only_sql_transaction THEN
        v_since := CASE WHEN EXISTS (SELECT 1 FROM :PGFENCE_SCHEMA.incarnations)
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
$fn$;
