// Where a batch's time goes: one worker alone drains batches of BATCH, and for each way of
// doing it we record the WAL it writes (pg_current_wal_lsn before and after), the WAL records
// by kind (pg_walinspect, when the server has it and we may create it: commits, row locks,
// heap and index writes) and the median time of each statement the worker sends.
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import pg from 'pg';
import { createPgFence } from '../../src/index.js';
import { BATCH } from './contenders.js';

export interface BatchCost {
  subject: string;
  batches: number;
  msPerBatch: number;
  walBytesPerBatch: number;
  /** WAL records per batch by "resource manager/record type"; empty without pg_walinspect. */
  records: Record<string, number>;
  /** Median ms of each step. */
  steps: Record<string, number>;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function walStats(
  admin: pg.Pool,
  start: string,
  end: string,
  batches: number,
): Promise<Record<string, number>> {
  try {
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    const { rows } = await admin.query<{ kind: string; count: string }>(
      `SELECT "resource_manager/record_type" AS kind, count
       FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0`,
      [start, end],
    );
    return Object.fromEntries(rows.map((r) => [r.kind, Number(r.count) / batches]));
  } catch {
    return {};
  }
}

async function measure(
  admin: pg.Pool,
  subject: string,
  batches: number,
  batch: (time: (step: string, p: Promise<unknown>) => Promise<unknown>) => Promise<void>,
): Promise<BatchCost> {
  const steps = new Map<string, number[]>();
  const time = async (step: string, p: Promise<unknown>) => {
    const t0 = performance.now();
    const value = await p;
    const list = steps.get(step) ?? [];
    list.push(performance.now() - t0);
    steps.set(step, list);
    return value;
  };
  for (let i = 0; i < 20; i += 1) await batch(async (_s, p) => p); // warm-up
  const lsn = async () =>
    (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  const start = await lsn();
  const t0 = performance.now();
  for (let i = 0; i < batches; i += 1) await batch(time);
  const ms = performance.now() - t0;
  const end = await lsn();
  const bytes = Number(
    (await admin.query<{ d: string }>('SELECT pg_wal_lsn_diff($2, $1)::text AS d', [start, end]))
      .rows[0]!.d,
  );
  return {
    subject,
    batches,
    msPerBatch: ms / batches,
    walBytesPerBatch: bytes / batches,
    records: await walStats(admin, start, end, batches),
    steps: Object.fromEntries([...steps].map(([k, v]) => [k, median(v)])),
  };
}

export async function batchCosts(
  url: string,
  admin: pg.Pool,
  schema: string,
  batches: number,
): Promise<BatchCost[]> {
  const n = (batches + 20) * BATCH;
  const make = async (name: string, done: string) => {
    const table = `"${schema}".${name}`;
    await admin.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, key text NOT NULL,
      ${done}, done_count smallint NOT NULL DEFAULT 0)`);
    await admin.query(
      `INSERT INTO ${table} (id, key) SELECT g, 'job:' || g FROM generate_series(1, $1::int) g`,
      [n],
    );
    return table;
  };
  const fencedTable = await make('cost_pgfence', 'done boolean NOT NULL DEFAULT false');
  await admin.query(`CREATE INDEX ON ${fencedTable} (id) WHERE NOT done`);
  const plainTable = await make('cost_plain', 'status smallint NOT NULL DEFAULT 0');
  await admin.query(`CREATE INDEX ON ${plainTable} (id) WHERE status = 0`);
  await admin.query(`VACUUM ANALYZE ${fencedTable}`);
  await admin.query(`VACUUM ANALYZE ${plainTable}`);

  const fence = createPgFence({ connectionString: url, schema, poolSize: 1 });
  const client = new pg.Client({ connectionString: url, application_name: 'pgfence-bench' });
  await client.connect();
  const from = sql<{
    key: string;
  }>`SELECT key FROM ${sql.raw(fencedTable)} WHERE NOT done ORDER BY id`;
  try {
    const fenced = await measure(admin, 'pgfence', batches, async (time) => {
      const leases = (await time(
        'claim (one statement, durable commit)',
        fence.claim({ from, limit: BATCH, ttlMs: 60_000 }),
      )) as Awaited<ReturnType<typeof fence.claim>>;
      await time('BEGIN', client.query('BEGIN'));
      const current = (await time(
        'xactRelease (one statement)',
        fence.xactRelease(client, leases),
      )) as typeof leases;
      await time(
        'completion UPDATE',
        client.query(
          `UPDATE ${fencedTable} SET done = true, done_count = done_count + 1 WHERE id = ANY($1::bigint[])`,
          [current.map((l) => l.key.slice('job:'.length))],
        ),
      );
      await time('COMMIT (durable)', client.query('COMMIT'));
    });
    const plain = await measure(admin, 'plain', batches, async (time) => {
      const { rows } = (await time(
        'claim UPDATE … SKIP LOCKED (durable commit)',
        client.query(
          `UPDATE ${plainTable} SET status = 1 WHERE id IN (SELECT id FROM ${plainTable}
           WHERE status = 0 ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED) RETURNING id`,
        ),
      )) as pg.QueryResult<{ id: string }>;
      await time(
        'completion UPDATE (durable commit)',
        client.query(
          `UPDATE ${plainTable} SET status = 2, done_count = done_count + 1 WHERE id = ANY($1::bigint[])`,
          [rows.map((r) => r.id)],
        ),
      );
    });
    return [fenced, plain];
  } finally {
    await fence.close();
    await client.end();
  }
}
