// Telemetry overhead: uncontended lease and advisory-lock cycles (acquire + release, one caller)
// on a PgFence without telemetry, with a meter provider, and with a meter and a tracer provider.
// `npm run bench:telemetry` (about three minutes) or `npm run bench:telemetry -- --quick`.
// Server: PGFENCE_BENCH_URL, else PGFENCE_TEST_URL, else postgres://postgres@127.0.0.1:5432/test.
// Rounds interleave the variants so that drift on a shared machine hits each alike; the ratio
// is of the medians over rounds. Target: with a meter provider ≥ 0.95× without.
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import pg from 'pg';
import { createPgFence, type PgFence, type PgFenceOptions } from '../src/index.js';

class Reader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 15;
const ROUND_MS = quick ? 1_000 : 2_000;
const url =
  process.env.PGFENCE_BENCH_URL ??
  process.env.PGFENCE_TEST_URL ??
  'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_otel_${randomBytes(3).toString('hex')}`;

const reader = new Reader();
const meterProvider = new MeterProvider({ readers: [reader] });
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(spans)],
});

const variants: [string, PgFenceOptions['telemetry']][] = [
  ['no provider', undefined],
  ['meter provider', { meterProvider }],
  ['meter + tracer', { meterProvider, tracerProvider }],
];

type Op = (fence: PgFence, i: number) => Promise<void>;
const ops: [string, Op][] = [
  [
    'lease',
    async (fence, i) => {
      const lease = await fence.lease(`bench:${i % 64}`, { ttlMs: 30_000 });
      await lease.release();
    },
  ],
  [
    'lock',
    async (fence, i) => {
      const lock = await fence.lock(`bench:${i % 64}`);
      await lock.release();
    },
  ],
];

/** Ops per second over one round, and this process's CPU time per op (µs). */
async function rate(fence: PgFence, op: Op): Promise<{ opsPerSec: number; cpuUsPerOp: number }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let n = 0;
  while (performance.now() - started < ROUND_MS) await op(fence, n++);
  const used = process.cpuUsage(cpu);
  return {
    opsPerSec: (n * 1_000) / (performance.now() - started),
    cpuUsPerOp: (used.user + used.system) / n,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<void> {
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  const fences = variants.map(([, telemetry]) =>
    createPgFence({ connectionString: url, schema, poolSize: 2, telemetry }),
  );
  try {
    await fences[0]!.migrate();
    for (const fence of fences) await rate(fence, ops[0]![1]); // warm up connections and JIT
    const results = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [opName, op] of ops) {
        for (const [v, [name]] of variants.entries()) {
          const key = `${opName}|${name}`;
          const r = await rate(fences[v]!, op);
          results.set(key, [...(results.get(key) ?? []), r.opsPerSec]);
          cpu.set(key, [...(cpu.get(key) ?? []), r.cpuUsPerOp]);
          spans.reset();
        }
      }
    }
    // Throughput is what the target is about; on a busy machine it swings with the load, so
    // this process's CPU per operation (what telemetry adds, and nothing else does) is shown too.
    const [load] = loadavg();
    console.log(`load average ${load!.toFixed(1)} at the end, ${cpus().length} CPUs`);
    console.log(
      `| operation | variant | ops/s (median of ${ROUNDS} × ${ROUND_MS} ms) | vs no provider | client CPU µs/op | added |`,
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: |');
    for (const [opName] of ops) {
      const base = median(results.get(`${opName}|no provider`)!);
      const baseCpu = median(cpu.get(`${opName}|no provider`)!);
      for (const [name] of variants) {
        const m = median(results.get(`${opName}|${name}`)!);
        const c = median(cpu.get(`${opName}|${name}`)!);
        console.log(
          `| ${opName} | ${name} | ${m.toFixed(0)} | ${(m / base).toFixed(3)}× | ${c.toFixed(0)} | ${(c - baseCpu).toFixed(0)} |`,
        );
      }
    }
  } finally {
    await Promise.allSettled(fences.map((f) => f.close()));
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
    await meterProvider.shutdown();
  }
}

await main();
