// A job-queue worker process as the README writes one: several concurrent loops wait for jobs
// with claim({ waitMs }), work on them, and complete each batch in one transaction that
// releases the leases still current (xactRelease) and marks exactly those jobs done.
// Exits when a wait comes back empty and no job is left undone; prints a JSON summary.
//
// argv: url schema owner loops batch ttlMs workMs stallEvery
// Every `stallEvery`-th batch (0: never) stalls past its leases' TTL before completing: its
// completion must then change nothing, and its jobs be done by whoever claims them next.
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
let batches = 0;

const fence = createPgFence({
  connectionString: url!,
  schema: schema!,
  owner: owner!,
  poolSize: loops + 2,
});
const pending = sql<{ key: string }>`SELECT 'job:' || id AS key FROM ${sql.table(`${schema}.jobs`)}
  WHERE done = 0 ORDER BY id`;
const summary = { claimed: 0, completed: 0, refused: 0, batches: 0 };

const appPool = new pg.Pool({
  connectionString: url!,
  max: loops,
  application_name: 'claim-worker',
});

async function remaining(): Promise<number> {
  const { rows } = await appPool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE done = 0`,
  );
  return rows[0]!.n;
}

async function loop(): Promise<void> {
  for (;;) {
    const leases = await fence.claim({ from: pending, limit: batch, ttlMs, waitMs: 1_000 });
    if (leases.length === 0) {
      if ((await remaining()) === 0) return;
      continue;
    }
    batches += 1;
    summary.batches += 1;
    summary.claimed += leases.length;
    if (stallEvery > 0 && batches % stallEvery === 0) await sleep(ttlMs + 500);
    else if (workMs > 0) await sleep(workMs * Math.random());
    const client = await appPool.connect();
    try {
      await client.query('BEGIN');
      const current = await fence.xactRelease(client, leases);
      const ids = current.map((lease) => Number(lease.key.slice('job:'.length)));
      const result = await client.query(
        `UPDATE "${schema}".jobs SET done = done + 1, done_by = $2 WHERE id = ANY($1::int[])`,
        [ids, owner],
      );
      await client.query('COMMIT');
      summary.completed += result.rowCount ?? 0;
      summary.refused += leases.length - current.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
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
