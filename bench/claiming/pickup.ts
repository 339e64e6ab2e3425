// Pickup latency: one claimer waits (claim({ waitMs, wakeChannel })) on an empty table whose
// trigger sends pg_notify on insert; a task is inserted; the time from sending the INSERT to
// the claim returning its lease is one sample. Polling is set far apart (60 s), so a fast
// pickup can only come from the notification.
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import pg from 'pg';
import { createPgFence } from '../../src/index.js';
import { Latencies } from '../lib/histogram.js';

const CHANNEL = 'bench_jobs_ready';

export async function pickupLatency(
  url: string,
  admin: pg.Pool,
  schema: string,
  samples: number,
): Promise<Latencies> {
  const table = `"${schema}".jobs_pickup`;
  await admin.query(
    `CREATE TABLE ${table} (id bigint PRIMARY KEY, done boolean NOT NULL DEFAULT false)`,
  );
  await admin.query(`
    CREATE FUNCTION "${schema}".jobs_pickup_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('${CHANNEL}', ''); RETURN NULL; END $$`);
  await admin.query(`
    CREATE TRIGGER jobs_ready AFTER INSERT ON ${table}
    FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".jobs_pickup_notify()`);
  const fence = createPgFence({
    connectionString: url,
    schema,
    pollIntervalMs: 60_000,
    poolSize: 2,
  });
  const inserter = new pg.Client({ connectionString: url, application_name: 'pgfence-bench' });
  await inserter.connect();
  const from = sql<{ key: string }>`SELECT id::text AS key FROM ${sql.raw(table)} WHERE NOT done`;
  const latencies = new Latencies();
  try {
    // Open the LISTEN connection first (a claim that finds nothing).
    await fence.claim({ from, limit: 1, waitMs: 20, wakeChannel: CHANNEL });
    for (let i = 1; i <= samples + 10; i += 1) {
      const claim = fence.claim({
        from,
        limit: 1,
        ttlMs: 60_000,
        waitMs: 30_000,
        wakeChannel: CHANNEL,
      });
      // Let the claimer go to sleep: its empty claim and probe take a few ms.
      await new Promise((r) => setTimeout(r, 15 + Math.random() * 10));
      const sent = performance.now();
      await inserter.query(`INSERT INTO ${table} (id) VALUES ($1)`, [i]);
      const leases = await claim;
      const ms = performance.now() - sent;
      if (leases.length !== 1) throw new Error(`pickup: claimed ${leases.length} tasks`);
      if (i > 10) latencies.record(ms);
      await inserter.query('BEGIN');
      await fence.xactRelease(inserter, leases);
      await inserter.query(`UPDATE ${table} SET done = true WHERE id = $1`, [i]);
      await inserter.query('COMMIT');
    }
  } finally {
    await fence.close();
    await inserter.end();
  }
  return latencies;
}
