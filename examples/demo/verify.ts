import type pg from 'pg';

/** The demo's outcome, read back from the database. */
export interface DemoSummary {
  jobs: number;
  doneOnce: number;
  doneTwice: number;
  notDone: number;
  writesAccepted: number;
  staleWritesRefused: number;
  /** Terms that ended unreleased (holder paused or killed) and were acquired again with a larger token. */
  takeovers: number;
  /** Unfinished jobs the killed worker held, and how many of them another worker claimed again and did. */
  killedWorkerJobs: number;
  killedWorkerJobsRedone: number;
  tokenRange: [string, string] | null;
  /** Pairs of completed critical sections on one shared resource that overlapped in time. */
  overlaps: number;
  sections: number;
  /** Every check passed. */
  ok: boolean;
  failures: string[];
}

/**
 * Checks the run by SQL alone: jobs done exactly once, stale writes refused, leases taken over,
 * the killed worker's jobs done by others, and no two completed sections on a shared lease or
 * lock overlapping (each section's ends were written while the lock was held, by the database clock).
 */
export async function verifyDemo(
  pool: pg.Pool,
  schema: string,
  faults: { paused: number | null; killed: number | null },
): Promise<DemoSummary> {
  const s = `"${schema}"`;
  const jobs = (
    await pool.query<{ jobs: number; once: number; twice: number; none: number }>(
      `SELECT count(*)::int AS jobs,
              count(*) FILTER (WHERE done_count = 1)::int AS once,
              count(*) FILTER (WHERE done_count > 1)::int AS twice,
              count(*) FILTER (WHERE done_count = 0)::int AS none
       FROM ${s}.demo_jobs`,
    )
  ).rows[0]!;
  const writes = (
    await pool.query<{ accepted: number; refused: number; lo: string | null; hi: string | null }>(
      `SELECT count(*) FILTER (WHERE kind = 'write' AND ok)::int AS accepted,
              count(*) FILTER (WHERE kind = 'write' AND NOT ok)::int AS refused,
              min(token) FILTER (WHERE kind = 'acquire')::text AS lo,
              max(token) FILTER (WHERE kind = 'acquire')::text AS hi
       FROM ${s}.demo_events`,
    )
  ).rows[0]!;
  // A term that was never released successfully and was followed by a larger token on the
  // same key: its holder stopped renewing (paused, killed or too slow) and someone took over.
  const takeovers = (
    await pool.query<{ takeovers: number; killed_jobs: number; redone: number }>(
      `WITH acq AS (
         SELECT resource, token, worker,
                lag(token) OVER w AS prev_token, lag(worker) OVER w AS prev_worker
         FROM ${s}.demo_events WHERE kind = 'acquire'
         WINDOW w AS (PARTITION BY resource ORDER BY token)
       ),
       released AS (
         SELECT resource, token FROM ${s}.demo_events WHERE kind = 'release' AND ok
       ),
       killed_terms AS (
         SELECT e.resource, e.token FROM ${s}.demo_events e
         JOIN ${s}.demo_jobs j ON j.key = e.resource
         WHERE e.kind = 'acquire' AND e.worker = $1
           AND NOT EXISTS (SELECT 1 FROM released r WHERE r.resource = e.resource AND r.token = e.token)
           -- Unfinished when it died: done later by a newer term, or never. A job finished by
           -- someone else just before this worker claimed it (done_token < its token) was not.
           AND (j.done_token IS NULL OR j.done_token > e.token)
       )
       SELECT
         (SELECT count(*)::int FROM acq a
          WHERE a.prev_token IS NOT NULL AND a.prev_worker <> a.worker
            AND NOT EXISTS (SELECT 1 FROM released r
                            WHERE r.resource = a.resource AND r.token = a.prev_token)) AS takeovers,
         (SELECT count(*)::int FROM killed_terms) AS killed_jobs,
         (SELECT count(*)::int FROM killed_terms k JOIN ${s}.demo_jobs j ON j.key = k.resource
          WHERE j.done_count = 1 AND j.done_by <> $1 AND j.done_token > k.token) AS redone`,
      [faults.killed ?? -1],
    )
  ).rows[0]!;
  const sections = (
    await pool.query<{ sections: number; overlaps: number }>(
      `SELECT (SELECT count(*)::int FROM ${s}.demo_sections WHERE ended_at IS NOT NULL) AS sections,
              (SELECT count(*)::int FROM ${s}.demo_sections a
               JOIN ${s}.demo_sections b ON a.resource = b.resource AND a.id < b.id
               WHERE a.ended_at IS NOT NULL AND b.ended_at IS NOT NULL
                 AND a.started_at < b.ended_at AND b.started_at < a.ended_at) AS overlaps`,
    )
  ).rows[0]!;

  const failures: string[] = [];
  if (jobs.none > 0) failures.push(`${jobs.none} jobs were never done`);
  if (jobs.twice > 0) failures.push(`${jobs.twice} jobs were done more than once`);
  if (sections.overlaps > 0) failures.push(`${sections.overlaps} overlapping critical sections`);
  if (faults.paused === null) {
    failures.push(
      'the jobs ran out before a worker could be paused: give it more --jobs or --seconds',
    );
  }
  if (faults.killed === null) {
    failures.push(
      'the jobs ran out before a worker could be killed: give it more --jobs or --seconds',
    );
  }
  if (faults.paused !== null && writes.refused === 0) {
    failures.push('no stale write was refused (the paused worker wrote nothing after waking)');
  }
  if (faults.paused !== null && takeovers.takeovers === 0) {
    failures.push('no lease was taken over');
  }
  if (takeovers.redone < takeovers.killed_jobs) {
    failures.push(
      `${takeovers.killed_jobs - takeovers.redone} unfinished jobs of the killed worker were not done by another`,
    );
  }
  return {
    jobs: jobs.jobs,
    doneOnce: jobs.once,
    doneTwice: jobs.twice,
    notDone: jobs.none,
    writesAccepted: writes.accepted,
    staleWritesRefused: writes.refused,
    takeovers: takeovers.takeovers,
    killedWorkerJobs: takeovers.killed_jobs,
    killedWorkerJobsRedone: takeovers.redone,
    tokenRange: writes.lo === null || writes.hi === null ? null : [writes.lo, writes.hi],
    overlaps: sections.overlaps,
    sections: sections.sections,
    ok: failures.length === 0,
    failures,
  };
}
