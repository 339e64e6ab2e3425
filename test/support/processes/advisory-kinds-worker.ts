// One "service" taking advisory locks of the newer kinds for a while, recording entry and exit
// with the mutual-exclusion checker:
//   rw   — `readers` callers take the key shared, `writers` exclusive, holding up to holdMs;
//   all  — callers take 2–3 random keys of `keys` with lockAll, in random order (with `mixed`,
//          every other caller takes its sets shared, and `readers` more take one random key
//          shared at a time);
//   fair — callers take one key exclusive, then do thinkMs of work outside it.
// argv[2]: JSON Config (below). Prints { acquisitions, errors, waitsMs } as JSON.
import { createPgFence, type AdvisoryLock } from '../../../src/index.js';
import { CheckerClient } from '../mutex-checker.js';
import { sleep } from '../wait.js';

interface Config {
  scenario: 'rw' | 'all' | 'fair';
  url: string;
  schema: string;
  checker: string;
  keys: string[];
  name: string;
  durationMs: number;
  holdMs: number;
  thinkMs?: number;
  readers?: number;
  writers?: number;
  callers?: number;
  mixed?: boolean;
  waitMs?: number;
  /** A key the test holds until every worker waits for it (shared): a common start. */
  barrier?: string;
}

const config = JSON.parse(process.argv[2]!) as Config;
const fence = createPgFence({ connectionString: config.url, schema: config.schema, poolSize: 2 });
const checker = await CheckerClient.connect(config.url, config.checker);
const errors: string[] = [];
const waitsMs: number[] = [];
let acquisitions = 0;
if (config.barrier)
  await (await fence.lock(config.barrier, { mode: 'shared', waitMs: 120_000 })).release();
const until = performance.now() + config.durationMs;
const waitMs = config.waitMs ?? 30_000;

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function hold(
  locks: AdvisoryLock[],
  holder: string,
  mode: 'shared' | 'exclusive',
): Promise<void> {
  acquisitions += 1;
  for (const lock of locks) await checker.enter(String(lock.key), holder, undefined, mode);
  await sleep(Math.random() * config.holdMs);
  for (const lock of locks) await checker.exit(String(lock.key), holder);
  for (const lock of locks) {
    if (!(await lock.release())) errors.push(`${holder}: release of ${String(lock.key)} failed`);
  }
}

async function caller(index: number, mode: 'shared' | 'exclusive'): Promise<void> {
  const holder = `${config.name}/${index}`;
  while (performance.now() < until) {
    try {
      const asked = performance.now();
      let locks: AdvisoryLock[];
      if (config.scenario === 'all' && index >= 200) {
        const key = config.keys[Math.floor(Math.random() * config.keys.length)]!;
        locks = [await fence.lock(key, { mode, waitMs })];
      } else if (config.scenario === 'all') {
        const count = 2 + Math.floor(Math.random() * 2);
        const keys = [...config.keys].sort(() => Math.random() - 0.5).slice(0, count);
        locks = await fence.lockAll(keys, { waitMs, mode });
      } else {
        locks = [await fence.lock(config.keys[0]!, { mode, waitMs })];
      }
      waitsMs.push(performance.now() - asked);
      await hold(locks, holder, mode);
      if (config.thinkMs) await sleep(config.thinkMs);
    } catch (error) {
      errors.push(`${holder}: ${describe(error)}`);
    }
  }
}

const callers: Promise<void>[] = [];
if (config.scenario === 'rw') {
  for (let i = 0; i < (config.readers ?? 0); i++) callers.push(caller(i, 'shared'));
  for (let i = 0; i < (config.writers ?? 0); i++) callers.push(caller(100 + i, 'exclusive'));
} else {
  for (let i = 0; i < (config.callers ?? 1); i++) {
    callers.push(caller(i, config.mixed && i % 2 === 1 ? 'shared' : 'exclusive'));
  }
  if (config.mixed) {
    for (let i = 0; i < (config.readers ?? 0); i++) callers.push(caller(200 + i, 'shared'));
  }
}
try {
  await Promise.all(callers);
} finally {
  await checker.close();
  await fence.close();
}
process.stdout.write(JSON.stringify({ acquisitions, errors, waitsMs }) + '\n');
