// One service under a failover test. Its role decides what it does until SIGTERM:
//   writer   — callers lease keys and make fenced writes through is_current, logging each token,
//              each accepted write and each release's result (fence-log), and entering and
//              leaving the mutual-exclusion checker;
//   advisory — callers take advisory locks and enter and leave the checker (leaving at once
//              when a lock's signal aborts: that is when the holder learns of the loss);
//   holder   — one caller holds `keys.length` auto-renewed leases for the whole run.
// Every pgfence call is timed against its bound (its wait plus `boundSlackMs`); on SIGTERM the
// process lets calls in flight settle for `settleMs`, then prints one JSON summary and exits.
// argv[2]: JSON Config
import pg from 'pg';
import { createPgFence, type Lease } from '../../../src/index.js';
import { CheckerClient } from '../mutex-checker.js';
import { FenceLogClient } from '../replication/fence-log.js';
import { sleep } from '../wait.js';

interface Config {
  role: 'writer' | 'advisory' | 'holder';
  name: string;
  url: string;
  schema: string;
  logUrl: string;
  logSchema: string;
  checkerSchema: string;
  keys: string[];
  callers: number;
  ttlMs: number;
  waitMs: number;
  holdMs: number;
  boundSlackMs: number;
  settleMs: number;
  /** Wait for SIGUSR1 before the first call: a process that first connects after the failover. */
  waitForGo?: boolean;
}

const config = JSON.parse(process.argv[2]!) as Config;
const errors = new Map<string, number>();
const noteError = (error: unknown) => {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const short = text.replace(/\d+/g, 'N').slice(0, 120);
  errors.set(short, (errors.get(short) ?? 0) + 1);
};
const fence = createPgFence({
  connectionString: config.url,
  schema: config.schema,
  poolSize: config.callers + 2,
  connectTimeoutMs: 3_000,
  statementTimeoutMs: 5_000,
  onError: noteError,
});
const log = await FenceLogClient.connect(config.logUrl, config.logSchema);
const checker = await CheckerClient.connect(config.logUrl, config.checkerSchema);
// The application's own pool for its fenced writes, bounded as an application's should be.
const app = new pg.Pool({
  connectionString: config.url,
  max: config.callers,
  connectionTimeoutMillis: 3_000,
  query_timeout: 5_000,
  application_name: 'failover-app',
});
app.on('error', () => {});

// Call bounds: every call must settle by then, whatever the network does.
interface Call {
  op: string;
  started: number;
  boundMs: number;
}
const pending = new Set<Call>();
let longestMs = 0;
let longestOp = '';
const overBound: string[] = [];
let calls = 0;
async function timed<T>(op: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const call: Call = { op, started: performance.now(), boundMs: waitMs + config.boundSlackMs };
  pending.add(call);
  calls += 1;
  try {
    return await fn();
  } finally {
    pending.delete(call);
    const took = performance.now() - call.started;
    if (took > longestMs) [longestMs, longestOp] = [took, op];
    if (took > call.boundMs) overBound.push(`${op} took ${Math.round(took)} ms`);
  }
}

let stopping = false;
const stopped = new Promise<void>((resolve) =>
  process.once('SIGTERM', () => {
    stopping = true;
    resolve();
  }),
);
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;
const summary = { acquired: 0, writes: 0, refused: 0, releasedFalse: 0, lost: 0, kept: 0 };
let ready = false;
const markReady = () => {
  if (ready) return;
  ready = true;
  process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
};

async function fencedWrite(lease: Lease, holder: string): Promise<void> {
  const client = await app.connect();
  let broken: Error | undefined;
  // A checked-out client whose server dies emits 'error'; the failing query reports it.
  const onError = (error: Error) => (broken = error);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await client.query(
      `INSERT INTO public.fenced_writes (key, token, holder)
       SELECT $1, $2, $3 WHERE "${config.schema}".is_current($1, $2)`,
      [lease.key, lease.token.toString(), holder],
    );
    if (result.rowCount === 1) {
      await log.record('write', lease.key, holder, lease.token);
      summary.writes += 1;
    } else {
      summary.refused += 1;
    }
    await client.query('COMMIT');
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

async function writer(index: number): Promise<void> {
  const holder = `${config.name}/${index}`;
  while (!stopping) {
    const key = pick(config.keys);
    let lease: Lease;
    try {
      lease = await timed('lease', config.waitMs, () =>
        fence.lease(key, { ttlMs: config.ttlMs, waitMs: config.waitMs }),
      );
    } catch (error) {
      noteError(error);
      await sleep(50);
      continue;
    }
    summary.acquired += 1;
    markReady();
    await log.record('acquired', key, holder, lease.token);
    await checker.enter(key, holder, lease.token);
    const work = (async () => {
      await fencedWrite(lease, holder);
      await sleep(Math.random() * config.holdMs);
      await fencedWrite(lease, holder);
    })().catch(noteError);
    // A holder stops working at once when its lease's signal aborts.
    await Promise.race([work, aborted(lease.signal)]);
    await checker.exit(key, holder);
    try {
      const released = await timed('release', 0, () => lease.release());
      if (!released) summary.releasedFalse += 1;
      await log.record('released', key, holder, lease.token, String(released));
    } catch (error) {
      noteError(error);
      await log.record('released', key, holder, lease.token, 'error');
    }
  }
}

async function advisory(index: number): Promise<void> {
  const holder = `${config.name}/${index}`;
  while (!stopping) {
    const key = pick(config.keys);
    let lock;
    try {
      lock = await timed('lock', config.waitMs, () => fence.lock(key, { waitMs: config.waitMs }));
    } catch (error) {
      noteError(error);
      await sleep(50);
      continue;
    }
    summary.acquired += 1;
    markReady();
    await checker.enter(key, holder);
    // A long hold ends at SIGTERM too: a release begun after it would otherwise race the
    // settle window and be counted as a call that never settled.
    await Promise.race([sleep(Math.random() * config.holdMs), aborted(lock.signal), stopped]);
    if (lock.signal.aborted) summary.lost += 1;
    await checker.exit(key, holder);
    await timed('release', 0, () => lock.release()).catch(noteError);
  }
}

async function holder(): Promise<Record<string, unknown>> {
  const leases: Lease[] = [];
  for (const key of config.keys) {
    const lease = await timed('lease', config.waitMs, () =>
      fence.lease(key, { ttlMs: config.ttlMs, waitMs: config.waitMs, autoRenew: true }),
    );
    leases.push(lease);
    await log.record('acquired', key, config.name, lease.token);
    lease.signal.addEventListener('abort', () => {
      summary.lost += 1;
      const reason = lease.signal.reason as Error | undefined;
      // A loss that cannot be recorded would make the log lie: the worker dies, loudly.
      log
        .record('lost', key, config.name, lease.token, reason?.message ?? 'aborted')
        .catch((error: unknown) => {
          console.error(error);
          process.exit(1);
        });
    });
  }
  markReady();
  await stopped;
  // Kept: never aborted, still the live term on the server, and released by its holder.
  const lost: string[] = [];
  for (const lease of leases) {
    try {
      const held = !lease.signal.aborted;
      const current = await timed('isCurrent', 0, () => fence.isCurrent(lease.key, lease.token));
      const released = await timed('release', 0, () => lease.release());
      if (held && current && released) summary.kept += 1;
      else lost.push(`${lease.key}: held ${held}, current ${current}, released ${released}`);
    } catch (error) {
      noteError(error);
      lost.push(`${lease.key}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { lostLeases: lost };
}

if (config.waitForGo) {
  process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
  await new Promise<void>((resolve) => process.once('SIGUSR1', () => resolve()));
}
const loops: Promise<unknown>[] = [];
let extra: Promise<Record<string, unknown>> = Promise.resolve({});
if (config.role === 'holder') extra = holder();
else {
  const body = config.role === 'writer' ? writer : advisory;
  for (let i = 0; i < config.callers; i += 1) loops.push(body(i));
}
await stopped;
// Calls in flight get `settleMs` to settle; any still pending then is reported with its age.
const settled = await Promise.race([
  Promise.all([...loops, extra]).then(() => true),
  sleep(config.settleMs).then(() => false),
]);
const now = performance.now();
const stillPending = [...pending].map((c) => ({ op: c.op, ageMs: Math.round(now - c.started) }));
for (const c of pending) {
  const age = now - c.started;
  if (age > longestMs) [longestMs, longestOp] = [age, `${c.op} (pending)`];
  if (age > c.boundMs) overBound.push(`${c.op} still pending after ${Math.round(age)} ms`);
}
const report = {
  event: 'summary',
  name: config.name,
  role: config.role,
  settled,
  calls,
  longestMs: Math.round(longestMs),
  longestOp,
  overBound,
  stillPending,
  ...summary,
  ...(settled ? await extra : {}),
  errors: Object.fromEntries(errors),
};
process.stdout.write(JSON.stringify(report) + '\n');
// Closing may itself wait on a silent socket; the summary is out, so end without waiting.
await Promise.race([
  Promise.allSettled([fence.close(), app.end(), log.close(), checker.close()]),
  sleep(2_000),
]);
process.exit(0);
