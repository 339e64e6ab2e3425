// One "service" for the lock-kind tests: several callers in this process take leases of one
// kind for a while, recording entry and exit with the mutual-exclusion checker.
// argv[2]: JSON Config (below). Prints one JSON line: { acquisitions, errors, ... }.
import { createPgFence, type Lease } from '../../../src/index.js';
import { CheckerClient } from '../mutex-checker.js';
import { sleep } from '../wait.js';

interface Config {
  scenario: 'semaphore' | 'rw' | 'set' | 'fair';
  url: string;
  schema: string;
  checker: string;
  keys: string[];
  callers: number;
  durationMs: number;
  holdMs: number;
  name: string;
  permits?: number;
  /** rw: how many of this process's callers are writers (the rest read). */
  writers?: number;
  /** fair: pause outside the lock between rounds. */
  gapMs?: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const fence = createPgFence({ connectionString: config.url, schema: config.schema, poolSize: 6 });
const checker = await CheckerClient.connect(config.url, config.checker);
const errors: string[] = [];
let acquisitions = 0;
let tryNulls = 0;
const waits: number[] = [];
const until = performance.now() + config.durationMs;

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

async function hold(key: string, holder: string, lease: Lease, mode?: 'shared' | 'exclusive') {
  acquisitions += 1;
  await checker.enter(key, holder, lease.token, mode);
  await sleep(Math.random() * config.holdMs);
  await checker.exit(key, holder);
  if (!(await lease.release())) errors.push(`${holder}: release of ${key} returned false`);
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

async function caller(index: number): Promise<void> {
  const holder = `${config.name}/${index}`;
  let round = 0;
  while (performance.now() < until) {
    round += 1;
    try {
      if (config.scenario === 'semaphore') {
        const key = config.keys[0]!;
        const useTry = round % 4 === 0;
        const lease = useTry
          ? await fence.tryLease(key, { permits: config.permits!, ttlMs: 10_000 })
          : await fence.lease(key, { permits: config.permits!, ttlMs: 10_000, waitMs: 30_000 });
        if (!lease) {
          tryNulls += 1;
          continue;
        }
        await hold(key, holder, lease);
      } else if (config.scenario === 'rw') {
        const key = config.keys[0]!;
        const mode = index < (config.writers ?? 0) ? 'exclusive' : 'shared';
        const asked = performance.now();
        const lease = await fence.lease(key, { mode, ttlMs: 10_000, waitMs: 30_000 });
        if (mode === 'exclusive') waits.push(performance.now() - asked);
        await hold(key, `${holder}${mode === 'exclusive' ? 'w' : 'r'}`, lease, mode);
      } else if (config.scenario === 'set') {
        const count = 2 + Math.floor(Math.random() * 2);
        const keys = shuffled(config.keys).slice(0, count);
        const leases = await fence.leaseAll(keys, { ttlMs: 10_000, waitMs: 30_000 });
        acquisitions += 1;
        leases.forEach((lease, i) => {
          if (lease.key !== keys[i])
            errors.push(`${holder}: lease ${i} is ${lease.key}, not ${keys[i]}`);
        });
        await Promise.all(leases.map((l) => checker.enter(l.key, holder, l.token)));
        await sleep(Math.random() * config.holdMs);
        await Promise.all(leases.map((l) => checker.exit(l.key, holder)));
        for (const lease of leases) {
          if (!(await lease.release()))
            errors.push(`${holder}: release of ${lease.key} returned false`);
        }
      } else {
        const key = config.keys[0]!;
        const asked = performance.now();
        const lease = await fence.lease(key, { ttlMs: 10_000, waitMs: 60_000 });
        waits.push(performance.now() - asked);
        await hold(key, holder, lease);
        if (config.gapMs) await sleep(config.gapMs);
      }
    } catch (error) {
      errors.push(`${holder}: ${describe(error)}`);
    }
  }
}

try {
  await Promise.all(Array.from({ length: config.callers }, (_, i) => caller(i)));
} finally {
  await checker.close();
  await fence.close();
}
waits.sort((a, b) => a - b);
const p = (q: number) =>
  waits.length ? waits[Math.min(waits.length - 1, Math.floor(q * waits.length))]! : 0;
process.stdout.write(
  JSON.stringify({
    acquisitions,
    tryNulls,
    errors,
    waitP50: p(0.5),
    waitP99: p(0.99),
    waitMax: waits.at(-1) ?? 0,
  }) + '\n',
);
