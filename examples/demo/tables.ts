import type pg from 'pg';
import { jobKey } from './messages.js';

/**
 * The demo's own tables, next to pgfence's in the demo schema: the jobs, a log of what the
 * workers did (acquisitions, releases, fenced writes and whether the database accepted them),
 * and the critical sections on the shared resources, so the summary is checked by SQL alone.
 */
export async function createDemoTables(pool: pg.Pool, schema: string, jobs: number): Promise<void> {
  const s = `"${schema}"`;
  await pool.query(`
    CREATE TABLE ${s}.demo_jobs (
      key        text PRIMARY KEY,
      done_count int NOT NULL DEFAULT 0,
      done_by    int,
      done_token bigint,
      done_at    timestamptz
    );
    CREATE TABLE ${s}.demo_events (
      id       bigserial PRIMARY KEY,
      at       timestamptz NOT NULL DEFAULT clock_timestamp(),
      worker   int NOT NULL,
      kind     text NOT NULL,
      resource text NOT NULL,
      token    bigint,
      ok       boolean
    );
    CREATE TABLE ${s}.demo_sections (
      id         bigserial PRIMARY KEY,
      resource   text NOT NULL,
      worker     int NOT NULL,
      token      bigint,
      started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      ended_at   timestamptz
    )`);
  const keys = Array.from({ length: jobs }, (_, i) => jobKey(i + 1));
  await pool.query(`INSERT INTO ${s}.demo_jobs (key) SELECT unnest($1::text[])`, [keys]);
}
