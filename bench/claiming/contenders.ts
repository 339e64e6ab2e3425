// The four ways of draining a job table that scenario 3 compares, each behind one interface:
// load n jobs (ids 1…n, table analyzed), drain them with WORKERS workers in batches of BATCH,
// verify every job was done exactly once.
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import pg from 'pg';
import { createPgFence, type PgFence } from '../../src/index.js';

export const WORKERS = 4;
export const BATCH = 10;

export interface Contender {
  id: string;
  label: string;
  load(n: number): Promise<void>;
  /** Works until every job is done; returns ms from the start to the last completion's commit. */
  drain(n: number): Promise<number>;
  /** Throws unless each of 1…n was completed exactly once. */
  verify(n: number): Promise<void>;
  close(): Promise<void>;
}

/** Per-job completion counts kept in the process, for queues whose tables forget finished jobs. */
export class Tally {
  readonly #counts = new Map<number, number>();
  add(id: number): void {
    this.#counts.set(id, (this.#counts.get(id) ?? 0) + 1);
  }
  get size(): number {
    return this.#counts.size;
  }
  reset(): void {
    this.#counts.clear();
  }
  verify(n: number, who: string): void {
    if (this.#counts.size !== n) throw new Error(`${who}: ${this.#counts.size} of ${n} jobs done`);
    for (const [id, count] of this.#counts) {
      if (count !== 1 || id < 1 || id > n) throw new Error(`${who}: job ${id} done ${count} times`);
    }
  }
}

function newPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'pgfence-bench' });
  pool.on('error', () => {});
  return pool;
}

async function newClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'pgfence-bench' });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** A jobs table of the shape both SQL contenders use: done_count proves exactly once. */
async function createJobsTable(admin: pg.Pool, table: string, doneColumn: string): Promise<void> {
  await admin.query(`CREATE TABLE ${table} (
      id         bigint   PRIMARY KEY,
      key        text     NOT NULL,
      ${doneColumn},
      done_count smallint NOT NULL DEFAULT 0
    )`);
}

async function verifySql(admin: pg.Pool, table: string, n: number, who: string): Promise<void> {
  const { rows } = await admin.query<{ n: number; bad: number }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE done_count <> 1)::int AS bad FROM ${table}`,
  );
  if (rows[0]?.n !== n || rows[0]?.bad !== 0) {
    throw new Error(`${who}: ${rows[0]?.bad} of ${rows[0]?.n} jobs not done exactly once`);
  }
}

/**
 * pgfence as the README's worker: `claim({ waitMs })` a batch of leases over the caller's
 * table, then one transaction that releases the leases still current (`xactRelease`) and marks
 * exactly those jobs done. Two commits per batch: the claim, the completion.
 */
export async function pgfenceContender(
  url: string,
  admin: pg.Pool,
  schema: string,
): Promise<Contender> {
  const table = `"${schema}".jobs_pgfence`;
  await createJobsTable(admin, table, 'done boolean NOT NULL DEFAULT false');
  await admin.query(`CREATE INDEX ON ${table} (id) WHERE NOT done`);
  const pools = Array.from({ length: WORKERS }, () => newPool(url, 2));
  const fences: PgFence[] = pools.map((pool) =>
    createPgFence({ pool, schema, applicationName: 'pgfence-bench' }),
  );
  const clients = await Promise.all(fences.map(() => newClient(url)));
  const from = sql<{ key: string }>`SELECT key FROM ${sql.raw(table)} WHERE NOT done ORDER BY id`;
  const remaining = async () =>
    (await admin.query(`SELECT 1 FROM ${table} WHERE NOT done LIMIT 1`)).rows.length;
  return {
    id: 'pgfence',
    label: 'pgfence claim({ waitMs }) + xactRelease and the completion UPDATE, one commit',
    load: (n) => loadSqlJobs(admin, table, n),
    drain: async () => {
      const start = performance.now();
      let last = start;
      await Promise.all(
        fences.map(async (fence, i) => {
          const client = clients[i]!;
          for (;;) {
            const leases = await fence.claim({ from, limit: BATCH, ttlMs: 60_000, waitMs: 200 });
            if (leases.length === 0) {
              if ((await remaining()) === 0) return;
              continue;
            }
            await client.query('BEGIN');
            const current = await fence.xactRelease(client, leases);
            await client.query(
              `UPDATE ${table} SET done = true, done_count = done_count + 1
               WHERE id = ANY($1::bigint[])`,
              [current.map((lease) => lease.key.slice('job:'.length))],
            );
            await client.query('COMMIT');
            last = performance.now();
          }
        }),
      );
      return last - start;
    },
    verify: (n) => verifySql(admin, table, n, 'pgfence'),
    close: async () => {
      await Promise.allSettled(fences.map((f) => f.close()));
      await Promise.allSettled([...pools.map((p) => p.end()), ...clients.map((c) => c.end())]);
    },
  };
}

/**
 * The plain SKIP LOCKED loop: one UPDATE claims a batch (marks it running, durably), a second
 * completes it. Two commits per batch, no leases, no fencing, nothing comes back by itself
 * when a worker dies.
 */
export async function plainContender(
  url: string,
  admin: pg.Pool,
  schema: string,
): Promise<Contender> {
  const table = `"${schema}".jobs_plain`;
  await createJobsTable(admin, table, 'status smallint NOT NULL DEFAULT 0');
  await admin.query(`CREATE INDEX ON ${table} (id) WHERE status = 0`);
  const clients = await Promise.all(Array.from({ length: WORKERS }, () => newClient(url)));
  const claim = `UPDATE ${table} SET status = 1 WHERE id IN (
      SELECT id FROM ${table} WHERE status = 0 ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED
    ) RETURNING id`;
  const complete = `UPDATE ${table} SET status = 2, done_count = done_count + 1
                    WHERE id = ANY($1::bigint[])`;
  const remaining = async () =>
    (await admin.query(`SELECT 1 FROM ${table} WHERE status = 0 LIMIT 1`)).rows.length;
  return {
    id: 'plain',
    label:
      'plain UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT 10) + completion UPDATE',
    load: (n) => loadSqlJobs(admin, table, n),
    drain: async () => {
      const start = performance.now();
      let last = start;
      await Promise.all(
        clients.map(async (client) => {
          for (;;) {
            const { rows } = await client.query<{ id: string }>(claim);
            if (rows.length === 0) {
              if ((await remaining()) === 0) return;
              continue;
            }
            await client.query(complete, [rows.map((r) => r.id)]);
            last = performance.now();
          }
        }),
      );
      return last - start;
    },
    verify: (n) => verifySql(admin, table, n, 'plain'),
    close: async () => {
      await Promise.allSettled(clients.map((c) => c.end()));
    },
  };
}

async function loadSqlJobs(admin: pg.Pool, table: string, n: number): Promise<void> {
  await admin.query(`TRUNCATE ${table}`);
  await admin.query(
    `INSERT INTO ${table} (id, key) SELECT g, 'job:' || g FROM generate_series(1, $1::int) g`,
    [n],
  );
  await admin.query(`VACUUM ANALYZE ${table}`);
}
