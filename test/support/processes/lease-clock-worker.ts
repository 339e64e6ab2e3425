// A process whose wall clock is wrong by PGFENCE_FAKE_CLOCK_OFFSET_MS (its Date is replaced
// before pgfence loads). It exercises leases and reports what it saw, so the test can check
// that its behaviour is the same as with a correct clock.
// argv[2]: JSON { url, schema, renewKey, expireKey, waitKey }
const offset = Number(process.env.PGFENCE_FAKE_CLOCK_OFFSET_MS ?? '0');
const RealDate = Date;
class FakeDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...(args as [string]));
  }
  static override now(): number {
    return RealDate.now() + offset;
  }
}
globalThis.Date = FakeDate as DateConstructor;

const { createPgFence } = await import('../../../src/index.js');
const config = JSON.parse(process.argv[2]!) as {
  url: string;
  schema: string;
  renewKey: string;
  expireKey: string;
  waitKey: string;
};
const fence = createPgFence({ connectionString: config.url, schema: config.schema });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report: Record<string, unknown> = { dateNow: Date.now() };

// 1. An auto-renewed lease lives through several TTLs.
const renewed = await fence.lease(config.renewKey, { ttlMs: 1_500, autoRenew: true });
await sleep(4_000);
report.renewedAborted = renewed.signal.aborted;
report.renewedCurrent = await fence.isCurrent(config.renewKey, renewed.token);
report.renewedReleased = await renewed.release();

// 2. A lease left alone is given up at sentAt + ttl − margin (900 ms here), not minutes off.
const started = performance.now();
const left = await fence.lease(config.expireKey, { ttlMs: 1_000 });
await new Promise<void>((resolve) => left.signal.addEventListener('abort', () => resolve()));
report.lostAfterMs = performance.now() - started;
report.expiresInMs = left.expiresAt.getTime() - RealDate.now();
await left.release();

// 3. Waiting for a key another process takes now (for 2,000 ms, not renewed) takes about that
//    long: the retry is timed by the holder's expiry as the database reports it.
process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
for (;;) {
  const early = await fence.tryLease(config.waitKey);
  if (!early) break;
  await early.release();
  await sleep(20);
}
const waitStarted = performance.now();
const waited = await fence.lease(config.waitKey, { waitMs: 30_000 });
report.waitedMs = performance.now() - waitStarted;
await waited.release();
await fence.close();
process.stdout.write(JSON.stringify({ event: 'done', ...report }) + '\n');
