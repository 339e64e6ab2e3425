// A quick side-by-side of lease kinds: acquire + release per second and latency, one PgFence.
//   node --import tsx bench/kinds-quick.ts <plain1|plain16|sem16> [seconds] [url]
// plain1: one caller, its own key; plain16: 16 callers, a key each (coalesced statements);
// sem16: 16 callers on one semaphore of 16 permits (never full: the cost of the kind itself).
// The same comparison, with interleaved rounds and its target, is scenario 8 of `npm run bench`.
import pg from 'pg';
import { createPgFence } from '../src/index.js';

const mode = process.argv[2] ?? 'plain1';
const seconds = Number(process.argv[3] ?? 3);
const url =
  process.argv[4] ?? process.env.PGFENCE_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `kinds_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: url });
await admin.connect();
const fence = createPgFence({ connectionString: url, schema, poolSize: 8 });
await fence.migrate();
const callers = mode === 'plain1' ? 1 : 16;
let ops = 0;
const latencies: number[] = [];
const until = performance.now() + seconds * 1000;
await Promise.all(
  Array.from({ length: callers }, async (_, i) => {
    while (performance.now() < until) {
      const started = performance.now();
      const lease =
        mode === 'sem16'
          ? await fence.lease('sem', { permits: 16, ttlMs: 10_000 })
          : await fence.lease(`k${i}`, { ttlMs: 10_000 });
      await lease.release();
      latencies.push(performance.now() - started);
      ops += 1;
    }
  }),
);
latencies.sort((a, b) => a - b);
const at = (q: number): number =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
console.log(
  JSON.stringify({
    mode,
    opsPerSec: Math.round(ops / seconds),
    p50Ms: +at(0.5).toFixed(2),
    p99Ms: +at(0.99).toFixed(2),
  }),
);
await fence.close();
await admin.query(`DROP SCHEMA ${schema} CASCADE`);
await admin.end();
