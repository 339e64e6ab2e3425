// Scenario 3: claiming. 4 workers take batches of 10 from a jobs table and complete each job
// with its own UPDATE. pgfence: `claim` (leases, one statement), then per job an UPDATE fenced
// by the lease's token (`is_current(key, token)` in its WHERE) and `release`. The baseline:
// the same loop written the usual way, BEGIN; SELECT … FOR UPDATE SKIP LOCKED LIMIT 10;
// an UPDATE per job; COMMIT — no leases, and row locks held while the batch is worked on.
// Each subject has a table of its own; rounds alternate between them.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPgFence, type PgFence } from '../../src/index.js';
import type { BenchContext } from '../lib/context.js';
import { Latencies } from '../lib/histogram.js';
import { errorMessage } from '../lib/variants.js';

const SCENARIO = '3. claiming (4 workers, batches of 10)';
const WORKERS = 4;
const BATCH = 10;

interface Worker {
  /** Claims and completes one batch; returns how many jobs it completed (0: table drained). */
  batch(): Promise<number>;
}

async function createJobs(ctx: BenchContext, table: string, rows: number): Promise<void> {
  await ctx.admin.query(`
    CREATE TABLE ${table} (
      id         bigint  PRIMARY KEY,
      key        text    NOT NULL UNIQUE,
      done       boolean NOT NULL DEFAULT false,
      done_token bigint
    )`);
  await ctx.admin.query(
    `INSERT INTO ${table} (id, key) SELECT g, 'job:' || g FROM generate_series(1, $1::int) g`,
    [rows],
  );
  await ctx.admin.query(`CREATE INDEX ON ${table} (id) WHERE NOT done`);
  await ctx.admin.query(`ANALYZE ${table}`);
}

/**
 * pgfence's loop: claim a batch (leases), complete its jobs with UPDATEs fenced by each lease's
 * token in one transaction (as the plain loop commits its batch once), then release the leases.
 * With `commitEach`, each job is instead committed and released on its own, as a worker whose
 * jobs are independent (and long) would do.
 */
function fencedWorker(
  w: FencedWorkerConnections,
  schema: string,
  table: string,
  commitEach: boolean,
): Worker {
  const { fence, writes } = w;
  const from = { sql: `SELECT key FROM ${table} WHERE NOT done ORDER BY id`, parameters: [] };
  const complete = `UPDATE ${table} SET done = true, done_token = $2
                    WHERE key = $1 AND "${schema}".is_current($1, $2)`;
  const fenced = async (db: pg.ClientBase | pg.Pool, key: string, token: bigint) => {
    const r = await db.query(complete, [key, token.toString()]);
    if (r.rowCount !== 1) throw new Error(`fenced update of ${key} was refused`);
  };
  return {
    batch: async () => {
      const leases = await fence.claim({ from, limit: BATCH, ttlMs: 60_000 });
      if (commitEach) {
        for (const lease of leases) {
          await fenced(writes, lease.key, lease.token);
          await lease.release();
        }
        return leases.length;
      }
      if (leases.length > 0) {
        const client = await writes.connect();
        try {
          await client.query('BEGIN');
          for (const lease of leases) await fenced(client, lease.key, lease.token);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        } finally {
          client.release();
        }
        await Promise.all(leases.map((l) => l.release()));
      }
      return leases.length;
    },
  };
}

/** A fenced worker's connections: its PgFence, and a pool of its own for the job writes. */
interface FencedWorkerConnections {
  fence: PgFence;
  writes: pg.Pool;
}

/**
 * Opens `WORKERS` fenced workers' connections. With `genericPlans`, every connection sets
 * plan_cache_mode=force_generic_plan (the experiment); `pools` collects what to end.
 */
function openFencedWorkers(
  ctx: BenchContext,
  genericPlans: boolean,
  pools: pg.Pool[],
): FencedWorkerConnections[] {
  const pool = (max: number) => {
    const p = new pg.Pool({
      connectionString: ctx.url,
      max,
      application_name: 'pgfence-bench',
      ...(genericPlans ? { options: '-c plan_cache_mode=force_generic_plan' } : {}),
    });
    p.on('error', () => {});
    pools.push(p);
    return p;
  };
  return Array.from({ length: WORKERS }, () => ({
    fence: createPgFence({ pool: pool(2), schema: ctx.schema, applicationName: 'pgfence-bench' }),
    writes: pool(1),
  }));
}

function plainWorker(client: pg.Client, table: string): Worker {
  const pick = `SELECT id FROM ${table} WHERE NOT done ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`;
  const complete = `UPDATE ${table} SET done = true WHERE id = $1`;
  return {
    batch: async () => {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<{ id: string }>(pick);
        for (const row of rows) await client.query(complete, [row.id]);
        await client.query('COMMIT');
        return rows.length;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    },
  };
}

interface Tally {
  jobs: number;
  ms: number;
  batches: Latencies;
  drained: boolean;
  emptyBatches: number;
  error: string | undefined;
}

async function round(
  workers: Worker[],
  durationMs: number,
  tally: Tally,
  isDrained: () => Promise<boolean>,
): Promise<void> {
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    workers.map(async (w) => {
      while (performance.now() < end && !tally.drained && tally.error === undefined) {
        const t0 = performance.now();
        try {
          const n = await w.batch();
          if (n === 0) {
            // Drained, or every candidate was locked by another claimer at that instant.
            if (await isDrained()) tally.drained = true;
            else tally.emptyBatches += 1;
          }
          tally.jobs += n;
        } catch (error) {
          tally.error ??= errorMessage(error);
          return;
        }
        tally.batches.record(performance.now() - t0);
      }
    }),
  );
  tally.ms += performance.now() - start;
}

export async function claiming(ctx: BenchContext): Promise<void> {
  const p = ctx.params;
  const fencedTable = `"${ctx.schema}".jobs_fenced`;
  const plainTable = `"${ctx.schema}".jobs_plain`;
  ctx.log(`  creating four jobs tables of ${p.jobs.toLocaleString('en-US')} rows`);
  await createJobs(ctx, fencedTable, p.jobs);
  await createJobs(ctx, plainTable, p.jobs);

  const eachTable = `"${ctx.schema}".jobs_fenced_each`;
  await createJobs(ctx, eachTable, p.jobs);
  // The experiment: the first loop again, on connections where PostgreSQL always uses generic
  // plans (the claim and lease functions otherwise re-plan their statements on every call).
  const genericTable = `"${ctx.schema}".jobs_generic`;
  await createJobs(ctx, genericTable, p.jobs);

  const pools: pg.Pool[] = [];
  const fenced = openFencedWorkers(ctx, false, pools);
  const generic = openFencedWorkers(ctx, true, pools);
  const clients = await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      const c = new pg.Client({ connectionString: ctx.url, application_name: 'pgfence-bench' });
      c.on('error', () => {});
      await c.connect();
      return c;
    }),
  );
  const drained = (table: string) => async () => {
    const { rows } = await ctx.admin.query(`SELECT 1 FROM ${table} WHERE NOT done LIMIT 1`);
    return rows.length === 0;
  };
  const subjects = [
    {
      id: 'pgfence',
      label: 'pgfence claim; fenced UPDATEs, one commit; release',
      table: fencedTable,
      workers: fenced.map((w) => fencedWorker(w, ctx.schema, fencedTable, false)),
    },
    {
      id: 'plain',
      label: 'plain FOR UPDATE SKIP LOCKED loop (no leases)',
      table: plainTable,
      workers: clients.map((c) => plainWorker(c, plainTable)),
    },
    {
      id: 'pgfence-each',
      label: 'pgfence claim; per job: fenced UPDATE, commit, release',
      table: eachTable,
      workers: fenced.map((w) => fencedWorker(w, ctx.schema, eachTable, true)),
    },
    {
      id: 'pgfence-generic',
      label: 'experiment: the first, with plan_cache_mode=force_generic_plan',
      table: genericTable,
      workers: generic.map((w) => fencedWorker(w, ctx.schema, genericTable, false)),
    },
  ].map((s) => ({
    ...s,
    isDrained: drained(s.table),
    tally: {
      jobs: 0,
      ms: 0,
      batches: new Latencies(),
      drained: false,
      emptyBatches: 0,
      error: undefined,
    } as Tally,
  }));
  try {
    for (const s of subjects) {
      await round(s.workers, 200, { ...s.tally, batches: new Latencies(), jobs: 0 }, s.isDrained);
    }
    for (let r = 0; r < p.claimRounds; r += 1) {
      for (let i = 0; i < subjects.length; i += 1) {
        const s = subjects[(i + r) % subjects.length];
        if (s && !s.tally.drained && s.tally.error === undefined)
          await round(s.workers, p.claimRoundMs, s.tally, s.isDrained);
      }
    }
  } finally {
    await Promise.allSettled([...fenced, ...generic].map((w) => w.fence.close()));
    await Promise.allSettled(pools.map((p) => p.end()));
    await Promise.allSettled(clients.map((c) => c.end()));
  }
  const config = `${WORKERS} workers, ${p.jobs.toLocaleString('en-US')} jobs`;
  const rate = new Map<string, number>();
  for (const s of subjects) {
    if (s.tally.error !== undefined) {
      ctx.report.row({
        scenario: SCENARIO,
        config,
        subject: s.label,
        status: 'failed',
        note: `failed: ${s.tally.error}`,
      });
      continue;
    }
    const perSec = (s.tally.jobs * 1000) / s.tally.ms;
    rate.set(s.id, perSec);
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: s.label,
      status: 'ok',
      opsPerSec: perSec,
      p50Ms: s.tally.batches.at(50),
      p99Ms: s.tally.batches.at(99),
      note:
        `jobs/s; latency per batch of ${BATCH}` +
        (s.tally.emptyBatches > 0 ? `; ${s.tally.emptyBatches} empty claims` : '') +
        (s.tally.drained ? '; table drained' : ''),
    });
  }
  const plain = rate.get('plain') ?? NaN;
  ctx.report.ratio(
    SCENARIO,
    config,
    'pgfence (batch commit) / plain SKIP LOCKED',
    (rate.get('pgfence') ?? NaN) / plain,
    'claim-vs-plain',
  );
  ctx.report.ratio(
    SCENARIO,
    config,
    'pgfence (commit per job) / plain SKIP LOCKED',
    (rate.get('pgfence-each') ?? NaN) / plain,
  );
  ctx.report.ratio(
    SCENARIO,
    config,
    'experiment (force_generic_plan) / plain SKIP LOCKED',
    (rate.get('pgfence-generic') ?? NaN) / plain,
  );
}
