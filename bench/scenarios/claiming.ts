// Scenario 3: claiming. Four contenders drain a table of jobs with 4 workers in batches of 10,
// side by side in one run: pgfence (claim({ waitMs }) + xactRelease with the completion, one
// commit), the plain SKIP LOCKED loop (claim UPDATE + completion UPDATE), pg-boss
// (fetch({ batchSize: 10 }) + complete(ids)) and graphile-worker with its batching. Every
// drain is checked job by job for exactly once; each job table is analyzed after loading;
// passes rotate the order. Then: pickup latency of a waiting claimer, and where one batch's
// time goes (WAL, commits, row locks, statements) for pgfence and the plain loop.
import { PostgresCpu } from '../lib/cpu.js';
import type { BenchContext } from '../lib/context.js';
import { batchCosts, type BatchCost } from '../claiming/cost.js';
import {
  pgfenceContender,
  plainContender,
  BATCH,
  WORKERS,
  type Contender,
} from '../claiming/contenders.js';
import { pickupLatency } from '../claiming/pickup.js';
import { graphileContender, pgBossContender } from '../claiming/queues.js';
import { errorMessage } from '../lib/variants.js';

const SCENARIO = '3. claiming (4 workers, batches of 10)';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function claiming(ctx: BenchContext): Promise<void> {
  const p = ctx.params;
  const n = p.jobs;
  const config = `${WORKERS} workers, ${n.toLocaleString('en-US')} jobs per drain`;
  const contenders: Contender[] = [];
  const failed = new Map<string, string>();
  const tryMake = async (id: string, make: () => Promise<Contender>) => {
    try {
      contenders.push(await make());
    } catch (error) {
      failed.set(id, errorMessage(error));
    }
  };
  await tryMake('pgfence', () => pgfenceContender(ctx.url, ctx.admin, ctx.schema));
  await tryMake('plain', () => plainContender(ctx.url, ctx.admin, ctx.schema));
  const bossSchema = await ctx.schemaFor('pgboss');
  await tryMake('pg-boss', () => pgBossContender(ctx.url, ctx.admin, bossSchema));
  const graphileSchema = await ctx.schemaFor('graphile');
  await tryMake('graphile-worker', () => graphileContender(ctx.url, ctx.admin, graphileSchema));

  const rates = new Map<string, number[]>();
  // CPU per batch of 10 (µs): this process (every contender's client runs here) and every
  // PostgreSQL process on this machine. On 2 cores the drains are CPU-bound, so these say
  // where a contender's rate comes from.
  const cpus = new Map<string, { bench: number[]; server: number[] }>();
  try {
    for (let pass = 0; pass < p.claimPasses; pass += 1) {
      for (let i = 0; i < contenders.length; i += 1) {
        const c = contenders[(i + pass) % contenders.length]!;
        if (failed.has(c.id)) continue;
        try {
          await c.load(n);
          const serverCpu = new PostgresCpu();
          await serverCpu.start();
          const benchBefore = process.cpuUsage();
          const ms = await c.drain(n);
          const benchCpu = process.cpuUsage(benchBefore);
          const serverSeconds = await serverCpu.stop();
          await c.verify(n);
          const list = rates.get(c.id) ?? [];
          list.push((n * 1000) / ms);
          rates.set(c.id, list);
          const batches = n / BATCH;
          const cpu = cpus.get(c.id) ?? { bench: [], server: [] };
          cpu.bench.push((benchCpu.user + benchCpu.system) / batches);
          if (serverSeconds !== null) cpu.server.push((serverSeconds * 1e6) / batches);
          cpus.set(c.id, cpu);
          ctx.log(`  pass ${pass + 1}: ${c.id} ${Math.round((n * 1000) / ms)} jobs/s`);
        } catch (error) {
          failed.set(c.id, errorMessage(error));
          ctx.log(`  ${c.id} failed: ${errorMessage(error)}`);
        }
      }
    }
  } finally {
    await Promise.allSettled(contenders.map((c) => c.close()));
  }

  const rate = new Map<string, number>();
  for (const c of contenders) {
    const list = rates.get(c.id) ?? [];
    const error = failed.get(c.id);
    if (error !== undefined || list.length === 0) {
      ctx.report.row({
        scenario: SCENARIO,
        config,
        subject: c.label,
        status: 'failed',
        note: `failed: ${error}`,
      });
      continue;
    }
    rate.set(c.id, median(list));
    const range = list.map((r) => Math.round(r).toLocaleString('en-US')).join(', ');
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: c.label,
      status: 'ok',
      opsPerSec: median(list),
      note:
        `jobs/s (median of ${list.length} drains: ${range}); every drain exactly once` +
        cpuNote(cpus.get(c.id)),
    });
  }
  for (const [id, error] of failed) {
    if (!contenders.some((c) => c.id === id)) {
      ctx.report.row({ scenario: SCENARIO, config, subject: id, status: 'failed', note: error });
    }
  }
  const pgfence = rate.get('pgfence') ?? NaN;
  const ratio = (label: string, other: string, metric: string) =>
    ctx.report.ratio(SCENARIO, config, label, pgfence / (rate.get(other) ?? NaN), metric);
  ratio('pgfence / plain SKIP LOCKED loop', 'plain', 'claim-vs-plain');
  ratio('pgfence / pg-boss fetch + complete', 'pg-boss', 'claim-vs-pgboss');
  ratio('pgfence / graphile-worker batched', 'graphile-worker', 'claim-vs-graphile');

  // Pickup latency of a task inserted while a claimer waits.
  try {
    const latencies = await pickupLatency(ctx.url, ctx.admin, ctx.schema, p.pickupSamples);
    ctx.report.row({
      scenario: SCENARIO,
      config: `1 waiting claimer, ${latencies.count} tasks`,
      subject: 'pgfence pickup: INSERT sent → claim({ waitMs, wakeChannel }) returned',
      status: 'ok',
      p50Ms: latencies.at(50),
      p99Ms: latencies.at(99),
      note: `max ${latencies.at(100).toFixed(2)} ms; polling 60 s apart, so each is a NOTIFY wake-up`,
    });
    ctx.report.metric('claim-pickup-p99', latencies.at(99));
  } catch (error) {
    ctx.report.row({
      scenario: SCENARIO,
      config: '1 waiting claimer',
      subject: 'pgfence pickup latency',
      status: 'failed',
      note: errorMessage(error),
    });
  }

  // Where one batch's time goes, one worker alone.
  try {
    const costs = await batchCosts(ctx.url, ctx.admin, ctx.schema, p.quick ? 200 : 500);
    for (const cost of costs) reportCost(ctx, cost);
  } catch (error) {
    ctx.log(`  batch cost failed: ${errorMessage(error)}`);
  }
}

function cpuNote(cpu: { bench: number[]; server: number[] } | undefined): string {
  if (!cpu || cpu.bench.length === 0) return '';
  const server = cpu.server.length
    ? `, PostgreSQL (local) ${Math.round(median(cpu.server))} µs`
    : ', PostgreSQL not measured (no /proc)';
  return `; CPU per batch: bench process ${Math.round(median(cpu.bench))} µs${server}`;
}

function reportCost(ctx: BenchContext, cost: BatchCost): void {
  const r = cost.records;
  const sum = (pattern: RegExp) =>
    Object.entries(r)
      .filter(([k]) => pattern.test(k))
      .reduce((a, [, v]) => a + v, 0);
  const kinds = Object.keys(r).length
    ? `; WAL records per batch: ${Object.entries(r)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')}`
    : '; (no pg_walinspect: record kinds not counted)';
  const steps = Object.entries(cost.steps)
    .map(([k, v]) => `${k} ${v.toFixed(3)} ms`)
    .join(', ');
  ctx.report.row({
    scenario: '3b. where a batch of 10 goes (1 worker alone)',
    config: `${cost.batches} batches`,
    subject: cost.subject,
    status: 'ok',
    p50Ms: cost.msPerBatch,
    note:
      `ms per batch (p50 column: mean); WAL ${Math.round(cost.walBytesPerBatch)} B per batch; ` +
      `commits ${sum(/^Transaction\/COMMIT/).toFixed(1)}, row locks ${sum(/^Heap\/LOCK/).toFixed(1)} per batch; ` +
      `median per step: ${steps}${kinds}`,
  });
  ctx.report.metric(`claim-cost.${cost.subject}.wal-bytes`, cost.walBytesPerBatch);
  ctx.report.metric(`claim-cost.${cost.subject}.commits`, sum(/^Transaction\/COMMIT/));
  ctx.report.metric(`claim-cost.${cost.subject}.ms`, cost.msPerBatch);
}
