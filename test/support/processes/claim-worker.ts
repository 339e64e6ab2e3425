// A job-queue worker process: several concurrent loops claim batches of jobs from
// <schema>.jobs, complete each with a fenced UPDATE (done = done + 1 only while the lease is
// current) and release it. Exits when no job is left undone; prints a JSON summary.
//
// argv: url schema owner loops batch ttlMs workMs stallEvery
// Every `stallEvery`-th job (0: never) stalls past its lease's TTL before writing: its write
// must then be refused, and the job done by whoever claims it next.
import { sql } from 'kysely';
import pg from 'pg';
import { createPgFence } from '../../../src/index.js';
import { sleep } from '../wait.js';

const [url, schema, owner, loopsArg, batchArg, ttlArg, workArg, stallArg] = process.argv.slice(2);
const loops = Number(loopsArg);
const batch = Number(batchArg);
const ttlMs = Number(ttlArg);
const workMs = Number(workArg);
const stallEvery = Number(stallArg ?? 0);
let handled = 0;

const fence = createPgFence({
  connectionString: url!,
  schema: schema!,
  owner: owner!,
  poolSize: loops + 2,
});
const jobs = sql.table(`${schema}.jobs`);
const pending = sql<{
  key: string;
}>`SELECT 'job:' || id AS key FROM ${jobs} WHERE done = 0 ORDER BY id`;

const summary = { claimed: 0, completed: 0, refused: 0, batches: 0 };

// The fenced write goes through a plain pg pool of the worker's own, as an application's would.
const appPool = new pg.Pool({
  connectionString: url!,
  max: loops,
  application_name: 'claim-worker',
});
async function query<R extends Record<string, unknown>>(text: string, values?: unknown[]) {
  return appPool.query<R>(text, values);
}

async function remaining(): Promise<number> {
  const { rows } = await query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE done = 0`,
  );
  return rows[0]!.n;
}

async function loop(): Promise<void> {
  for (;;) {
    const leases = await fence.claim({ from: pending, limit: batch, ttlMs });
    if (leases.length === 0) {
      if ((await remaining()) === 0) return;
      await sleep(20);
      continue;
    }
    summary.batches += 1;
    summary.claimed += leases.length;
    for (const lease of leases) {
      handled += 1;
      if (stallEvery > 0 && handled % stallEvery === 0) await sleep(ttlMs + 500);
      else if (workMs > 0) await sleep(workMs * Math.random());
      const id = Number(lease.key.slice('job:'.length));
      const result = await query(
        `UPDATE "${schema}".jobs SET done = done + 1, done_by = $2
         WHERE id = $1 AND "${schema}".is_current($3, $4)`,
        [id, owner, lease.key, lease.token.toString()],
      );
      if (result.rowCount === 1) summary.completed += 1;
      else summary.refused += 1;
      await lease.release();
    }
  }
}

process.stdout.write(JSON.stringify({ started: true }) + '\n');
try {
  await Promise.all(Array.from({ length: loops }, () => loop()));
  process.stdout.write(JSON.stringify(summary) + '\n');
} finally {
  await fence.close();
  await appPool.end();
}
