// Which statements one pgfence call sends, and how long each takes: a profiling aid for the
// bench's findings. Patches pg.Client#query in this process only (so it sees the pool's and
// the dedicated session connections alike), runs each cycle alone at 1 caller, and prints the
// statements per cycle with their median time.
//   node --import tsx bench/profile.ts [--embedded]
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPgFence, type PgFence } from '../src/index.js';
import { openServer } from './lib/server.js';

interface Seen {
  text: string;
  ms: number[];
}

const seen = new Map<string, Seen>();
let recording = false;
const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
(pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (
  this: pg.Client,
  ...args: unknown[]
) {
  const q = args[0];
  const text = (typeof q === 'string' ? q : ((q as { text?: string } | null)?.text ?? '?'))
    .replace(/\s+/g, ' ')
    .trim();
  if (!recording) return original.apply(this, args);
  const t0 = performance.now();
  const done = () => {
    const s = seen.get(text) ?? { text, ms: [] };
    s.ms.push(performance.now() - t0);
    seen.set(text, s);
  };
  // pg.Pool#query passes a callback; direct client.query calls get a promise.
  const last = args.length - 1;
  const callback = args[last];
  if (typeof callback === 'function') {
    args[last] = (...cbArgs: unknown[]) => {
      done();
      return (callback as (...a: unknown[]) => unknown)(...cbArgs);
    };
  }
  const result = original.apply(this, args);
  if (result instanceof Promise) void result.then(done, () => {});
  return result;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function profile(name: string, cycles: number, cycle: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 50; i += 1) await cycle();
  seen.clear();
  recording = true;
  const t0 = performance.now();
  for (let i = 0; i < cycles; i += 1) await cycle();
  const ms = (performance.now() - t0) / cycles;
  recording = false;
  await new Promise((r) => setTimeout(r, 200));
  console.log(`\n${name}: ${ms.toFixed(3)} ms per cycle`);
  for (const s of [...seen.values()].sort((a, b) => b.ms.length - a.ms.length)) {
    console.log(
      `  ${(s.ms.length / cycles).toFixed(2)} per cycle, median ${median(s.ms).toFixed(3)} ms: ${s.text.slice(0, 150)}`,
    );
  }
}

const server = await openServer(process.argv.includes('--embedded'));
const schema = `bench_profile_${process.pid}`;
const fence: PgFence = createPgFence({ connectionString: server.url, schema });
const raw = new pg.Client({ connectionString: server.url });
try {
  await fence.migrate();
  await raw.connect();
  await raw.query(
    `CREATE TABLE "${schema}".naive (key text PRIMARY KEY, token bigint NOT NULL, expires_at timestamptz NOT NULL)`,
  );
  const cycles = 500;
  await profile('raw advisory', cycles, async () => {
    await raw.query('SELECT pg_try_advisory_lock($1)', [42]);
    await raw.query('SELECT pg_advisory_unlock($1)', [42]);
  });
  await profile('pgfence tryLock + release', cycles, async () => {
    const lock = await fence.tryLock('p:lock');
    if (!lock) throw new Error('not free');
    await lock.release();
  });
  await profile('naive lease', cycles, async () => {
    const r = await raw.query<{ token: string }>(
      `INSERT INTO "${schema}".naive AS l VALUES ($1, 1, clock_timestamp() + interval '30 s')
       ON CONFLICT (key) DO UPDATE SET token = l.token + 1, expires_at = EXCLUDED.expires_at
       WHERE l.expires_at <= clock_timestamp() RETURNING token`,
      ['p:naive'],
    );
    await raw.query(`DELETE FROM "${schema}".naive WHERE key = $1 AND token = $2`, [
      'p:naive',
      r.rows[0]?.token,
    ]);
  });
  await profile('pgfence tryLease + release', cycles, async () => {
    const lease = await fence.tryLease('p:lease', { ttlMs: 30_000 });
    if (!lease) throw new Error('not free');
    await lease.release();
  });
  await raw.query(
    `CREATE TABLE "${schema}".jobs AS SELECT g AS id, 'job:' || g AS key, false AS done
     FROM generate_series(1, 20000) g`,
  );
  await raw.query(`ALTER TABLE "${schema}".jobs ADD PRIMARY KEY (id)`);
  await raw.query(`CREATE INDEX ON "${schema}".jobs (id) WHERE NOT done`);
  await raw.query(`CREATE UNIQUE INDEX ON "${schema}".jobs (key)`);
  const jobs = `"${schema}".jobs`;
  const from = { sql: `SELECT key FROM ${jobs} WHERE NOT done ORDER BY id`, parameters: [] };
  const worker = new pg.Client({ connectionString: server.url });
  await worker.connect();
  try {
    await profile('pgfence claim 10; fenced UPDATEs, one commit; release', 300, async () => {
      const leases = await fence.claim({ from, limit: 10, ttlMs: 60_000 });
      await worker.query('BEGIN');
      for (const l of leases) {
        await worker.query(
          `UPDATE ${jobs} SET done = true WHERE key = $1 AND "${schema}".is_current($1, $2)`,
          [l.key, l.token.toString()],
        );
      }
      await worker.query('COMMIT');
      await Promise.all(leases.map((l) => l.release()));
    });
    await profile('plain SKIP LOCKED batch of 10', 300, async () => {
      await worker.query('BEGIN');
      const { rows } = await worker.query<{ id: string }>(
        `SELECT id FROM ${jobs} WHERE NOT done ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED`,
      );
      for (const r of rows)
        await worker.query(`UPDATE ${jobs} SET done = true WHERE id = $1`, [r.id]);
      await worker.query('COMMIT');
    });
  } finally {
    await worker.end();
  }
} finally {
  await fence.close();
  await raw.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await raw.end();
  await server.close();
}
