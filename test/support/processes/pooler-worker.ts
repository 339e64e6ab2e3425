// One "service" behind PgBouncer: several callers take keys in turn for a while with one lock
// kind, recording entry and exit with the mutual-exclusion checker (straight to the server, one
// connection per caller, so an exit is never queued behind another caller's entry), or run a
// reaper and record its passes. Prints its counts as JSON and exits, after close().
// argv[2]: JSON Config
import pg from 'pg';
import { createPgFence, LockTimeoutError, SessionChangedError } from '../../../src/index.js';
import { CheckerClient } from '../mutex-checker.js';
import { sleep } from '../wait.js';

interface Config {
  kind: 'session' | 'lease' | 'xact' | 'reaper';
  /** Through the pooler. */
  url: string;
  /** Straight to the server: the checker. */
  direct: string;
  schema: string;
  checker: string;
  keys: string[];
  callers: number;
  durationMs: number;
  holdMs: number;
  name: string;
  poolSize: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const errors: string[] = [];
const fence = createPgFence({
  connectionString: config.url,
  schema: config.schema,
  poolSize: config.poolSize,
  livenessIntervalMs: 200,
  onError: (error) => errors.push(`onError: ${describe(error)}`),
});
const counts = { grants: 0, refused: 0, timeouts: 0, lost: 0, passes: 0 };
const passes: { start: number; end: number; deleted: number }[] = [];
const until = performance.now() + config.durationMs;

function describe(error: unknown): string {
  return error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
}

/** A wall-clock time in ms with sub-ms precision, comparable across processes of one host. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

async function holdSession(checker: CheckerClient, holder: string, key: string, round: number) {
  const lock =
    round % 3 === 0
      ? await fence.tryLock(key)
      : await fence.lock(key, { waitMs: 5_000 }).catch((error: unknown) => {
          if (error instanceof LockTimeoutError) {
            counts.timeouts += 1;
            return null;
          }
          throw error;
        });
  if (!lock) return;
  counts.grants += 1;
  await checker.enter(key, holder);
  // A holder stops believing it holds the key the moment its signal aborts: its exit is
  // recorded then, before pgfence gives the key back on the server.
  let exited: Promise<void> | undefined;
  const onLost = (): void => {
    counts.lost += 1;
    exited ??= checker.exit(key, holder);
  };
  lock.signal.addEventListener('abort', onLost, { once: true });
  await sleep(config.holdMs);
  lock.signal.removeEventListener('abort', onLost);
  exited ??= checker.exit(key, holder);
  await exited;
  await lock.release();
}

async function holdLease(checker: CheckerClient, holder: string, key: string) {
  const lease = await fence.lease(key, { ttlMs: 20_000, waitMs: 10_000 });
  counts.grants += 1;
  await checker.enter(key, holder, lease.token);
  await sleep(config.holdMs);
  await checker.exit(key, holder);
  await lease.release();
}

async function holdXact(pool: pg.Pool, checker: CheckerClient, holder: string, key: string) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await fence.xactLock(client, key, { waitMs: 10_000 });
    counts.grants += 1;
    await checker.enter(key, holder);
    await sleep(config.holdMs);
    await checker.exit(key, holder);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function caller(index: number, pool: pg.Pool): Promise<void> {
  const holder = `${config.name}/${index}`;
  const checker = await CheckerClient.connect(config.direct, config.checker);
  try {
    for (let round = 0; performance.now() < until; round += 1) {
      const key = config.keys[(index + round) % config.keys.length]!;
      try {
        if (config.kind === 'session') await holdSession(checker, holder, key, round);
        else if (config.kind === 'lease') await holdLease(checker, holder, key);
        else await holdXact(pool, checker, holder, key);
      } catch (error) {
        if (error instanceof SessionChangedError) {
          counts.refused += 1;
          await sleep(5);
        } else {
          errors.push(describe(error));
          await sleep(20);
        }
      }
    }
  } finally {
    await checker.close();
  }
}

if (config.kind === 'reaper') {
  const reaper = fence.startReaper({
    intervalMs: 20,
    batchSize: 50,
    onPass: (pass) => {
      const end = now();
      passes.push({ start: end - pass.durationMs, end, deleted: pass.deleted });
      counts.passes += 1;
    },
    onError: (error) => errors.push(`reaper: ${describe(error)}`),
  });
  await sleep(config.durationMs);
  await reaper.stop();
} else {
  // xactLock runs in the caller's own transaction, on a pool of the caller's, through the pooler.
  const pool = new pg.Pool({ connectionString: config.url, max: config.callers });
  pool.on('error', () => {});
  try {
    await Promise.all(Array.from({ length: config.callers }, (_, i) => caller(i, pool)));
  } finally {
    await pool.end();
  }
}
await fence.close();
process.stdout.write(JSON.stringify({ name: config.name, counts, errors, passes }) + '\n');
