import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, type PgFence } from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { settledWithin } from '../support/wait.js';

/** The in-memory reader of the example: collects on demand, cumulative. */
class InMemoryReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
  async metrics(): Promise<Map<string, MetricData>> {
    const { resourceMetrics } = await this.collect();
    const byName = new Map<string, MetricData>();
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
    }
    return byName;
  }
}

type Attrs = Record<string, string>;
const matches = (have: Record<string, unknown>, want: Attrs): boolean =>
  Object.entries(want).every(([k, v]) => have[k] === v);

/** The sum of a counter (or up-down counter) over the points matching `attrs`. */
function sum(metrics: Map<string, MetricData>, name: string, attrs: Attrs = {}): number {
  const metric = metrics.get(name);
  if (!metric) return 0;
  expect(metric.dataPointType).toBe(DataPointType.SUM);
  let total = 0;
  for (const point of metric.dataPoints) {
    if (matches(point.attributes, attrs)) total += point.value as number;
  }
  return total;
}

/** How many values a histogram recorded over the points matching `attrs`. */
function count(metrics: Map<string, MetricData>, name: string, attrs: Attrs = {}): number {
  const metric = metrics.get(name);
  if (!metric) return 0;
  expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM);
  let total = 0;
  for (const point of metric.dataPoints) {
    if (matches(point.attributes, attrs)) total += (point.value as { count: number }).count;
  }
  return total;
}

describe('telemetry: metrics and spans match what happened', () => {
  let t: TestFence;
  let fence: PgFence;
  const reader = new InMemoryReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(spans)],
  });

  beforeAll(async () => {
    t = await migratedFence({ applicationName: 'pgfence-otel' });
    fence = t.another({
      telemetry: { meterProvider, tracerProvider },
      applicationName: 'pgfence-otel',
    });
  });
  afterAll(async () => {
    await t?.cleanup();
    await meterProvider.shutdown();
  });

  it('counts acquisitions, a timeout, a loss, renewals, a claim, a reaper pass and sessions', async () => {
    // Two acquisitions and a timeout.
    const a = await fence.lease('otel:a', { ttlMs: 30_000 });
    await expect(fence.lease('otel:a', { waitMs: 150 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(await fence.tryLease('otel:a')).toBeNull(); // a try that finds it held: a timeout too
    await a.extend();

    // A loss: no renewal, so the holder's local deadline passes.
    const b = await fence.lease('otel:b', { ttlMs: 400 });
    const lost = new Promise((resolve) => b.signal.addEventListener('abort', resolve));
    expect(await settledWithin(lost, 20_000)).not.toBeNull();

    let m = await reader.metrics();
    expect(count(m, 'pgfence.lock.acquire.duration', { 'pgfence.lock.outcome': 'acquired' })).toBe(
      2,
    );
    expect(count(m, 'pgfence.lock.acquire.duration', { 'pgfence.lock.outcome': 'timeout' })).toBe(
      2,
    );
    expect(count(m, 'pgfence.lock.acquire.duration', { 'pgfence.lock.kind': 'lease' })).toBe(4);
    expect(sum(m, 'pgfence.lease.held')).toBe(1); // a is held, b was lost
    expect(sum(m, 'pgfence.lock.losses', { 'pgfence.loss.reason': 'deadline' })).toBe(1);
    expect(sum(m, 'pgfence.lock.losses')).toBe(1);
    expect(sum(m, 'pgfence.lease.renewals', { 'pgfence.renewal.outcome': 'renewed' })).toBe(1);
    expect(count(m, 'pgfence.lease.renewal.duration')).toBe(1);
    expect(sum(m, 'pgfence.lease.renewal.failures')).toBe(0);

    expect(await a.release()).toBe(true);
    expect(await b.release()).toBe(false);

    // A claim of two keys, then a reaper pass.
    const claimed = await fence.claim({ keys: ['otel:j1', 'otel:j2'], limit: 5, ttlMs: 200 });
    expect(claimed).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the claimed rows expire
    const deleted = await fence.reap();

    // An advisory lock, and its session killed under it.
    const lock = await fence.lock('otel:x');
    m = await reader.metrics();
    expect(sum(m, 'pgfence.advisory.sessions')).toBe(1);
    const killed = new Promise((resolve) => lock.signal.addEventListener('abort', resolve));
    const killedRows = await t.pool.query(
      `SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
         AND ((l.classid::bigint << 32) | l.objid::bigint) = $1`,
      [advisoryKeyId(t.schema, 'otel:x').toString()],
    );
    expect(killedRows.rowCount).toBe(1);
    expect(await settledWithin(killed, 20_000)).not.toBeNull();

    m = await reader.metrics();
    expect(sum(m, 'pgfence.lease.held')).toBe(0);
    expect(count(m, 'pgfence.lease.hold.duration')).toBe(4); // a, b and the two claimed
    expect(sum(m, 'pgfence.claim.batches')).toBe(1);
    expect(count(m, 'pgfence.claim.batch.size')).toBe(1);
    const sizes = m.get('pgfence.claim.batch.size')!.dataPoints[0]!.value as { sum: number };
    expect(sizes.sum).toBe(2);
    expect(sum(m, 'pgfence.reaper.passes')).toBe(1);
    expect(sum(m, 'pgfence.reaper.deleted')).toBe(deleted);
    expect(count(m, 'pgfence.lock.acquire.duration', { 'pgfence.lock.kind': 'advisory' })).toBe(1);
    expect(sum(m, 'pgfence.lock.losses', { 'pgfence.lock.kind': 'advisory' })).toBe(1);
    expect(sum(m, 'pgfence.lock.losses', { 'pgfence.loss.reason': 'session' })).toBe(1);
    expect(sum(m, 'pgfence.advisory.sessions')).toBe(0);
    for (const metric of m.values()) {
      for (const point of metric.dataPoints)
        expect(point.attributes).not.toHaveProperty('pgfence.lock.key');
    }
  });

  it('spans carry the outcome and the token, and no key unless asked', async () => {
    spans.reset();
    const lease = await fence.lease('otel:span', { ttlMs: 30_000 });
    await lease.release();
    const [acquire, release] = spans.getFinishedSpans();
    expect(acquire!.name).toBe('pgfence.acquire');
    expect(acquire!.attributes).toEqual({
      'pgfence.lock.kind': 'lease',
      'pgfence.lock.outcome': 'acquired',
      'pgfence.lease.token': lease.token.toString(),
    });
    expect(release!.name).toBe('pgfence.release');
    expect(release!.attributes).toMatchObject({
      'pgfence.lease.token': lease.token.toString(),
      'pgfence.lock.released': true,
    });
    expect(release!.attributes).not.toHaveProperty('pgfence.lock.key');

    spans.reset();
    const withKeys = t.another({ telemetry: { tracerProvider, includeKeys: true } });
    await withKeys.withLease('otel:keyed', () => {});
    const names = spans.getFinishedSpans().map((s) => [s.name, s.attributes['pgfence.lock.key']]);
    expect(names).toEqual([
      ['pgfence.acquire', 'otel:keyed'],
      ['pgfence.release', 'otel:keyed'],
    ]);
  });

  it('refuses unknown telemetry options', () => {
    expect(() => t.another({ telemetry: { includeKey: true } as never })).toThrow(
      /unknown telemetry option "includeKey"/,
    );
  });
});
