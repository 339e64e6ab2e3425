// One "service" of the contract suite: several callers in this process take a lock kind's keys
// in turn for a while, recording entry and exit with the mutual-exclusion checker.
// argv[2]: JSON { kind, url, schema, checker, keys, callers, durationMs, holdMs, name }
import { createPgFence, LockTimeoutError } from '../../../src/index.js';
import type { LockKind } from '../contract.js';
import { CheckerClient } from '../mutex-checker.js';
import { sleep } from '../wait.js';

interface Config {
  kind: LockKind;
  url: string;
  schema: string;
  checker: string;
  keys: string[];
  callers: number;
  durationMs: number;
  holdMs: number;
  name: string;
}

const config = JSON.parse(process.argv[2]!) as Config;
const fence = createPgFence({ connectionString: config.url, schema: config.schema, poolSize: 4 });
const checker = await CheckerClient.connect(config.url, config.checker);
const errors: string[] = [];
let acquisitions = 0;
let tries = 0;
let tryNulls = 0;
const until = performance.now() + config.durationMs;

async function caller(index: number): Promise<void> {
  const holder = `${config.name}/${index}`;
  let round = 0;
  while (performance.now() < until) {
    round += 1;
    const key = config.keys[(index + round) % config.keys.length]!;
    try {
      // Every fifth round only tries, so try-acquire is checked under contention too.
      const useTry = round % 5 === 0;
      let handle: { release(): Promise<boolean>; token?: bigint } | null;
      // advisory-shared and lease-shared: odd callers are readers, the rest writers.
      const sharedKind = config.kind === 'advisory-shared' || config.kind === 'lease-shared';
      const mode = sharedKind && index % 2 === 1 ? 'shared' : 'exclusive';
      if (config.kind === 'lease-shared') {
        handle = useTry
          ? await fence.tryLease(key, { ttlMs: 10_000, mode })
          : await fence.lease(key, { ttlMs: 10_000, waitMs: 30_000, mode });
      } else if (config.kind === 'lease' || config.kind === 'semaphore') {
        const kind = config.kind === 'semaphore' ? { permits: 1 } : {};
        handle = useTry
          ? await fence.tryLease(key, { ttlMs: 10_000, ...kind })
          : await fence.lease(key, { ttlMs: 10_000, waitMs: 30_000, ...kind });
      } else if (config.kind === 'lease-set') {
        handle = useTry
          ? await fence
              .leaseAll([key], { ttlMs: 10_000, waitMs: 0 })
              .then((l) => l[0]!)
              .catch(() => null)
          : (await fence.leaseAll([key], { ttlMs: 10_000, waitMs: 30_000 }))[0]!;
      } else if (config.kind === 'election') {
        handle = useTry
          ? await fence.campaign(key, { ttlMs: 10_000, waitMs: 0 }).catch(() => null)
          : await fence.campaign(key, { ttlMs: 10_000, waitMs: 30_000 });
      } else if (config.kind === 'lock-all') {
        handle = await fence.lockAll([key], { waitMs: useTry ? 0 : 30_000 }).then(
          ([lock]) => lock!,
          (error: unknown) => {
            if (useTry && error instanceof LockTimeoutError) return null;
            throw error;
          },
        );
      } else if (config.kind === 'advisory-shared') {
        handle = useTry
          ? await fence.tryLock(key, { mode })
          : await fence.lock(key, { mode, waitMs: 30_000 });
      } else {
        handle = useTry ? await fence.tryLock(key) : await fence.lock(key, { waitMs: 30_000 });
      }
      if (useTry) tries += 1;
      if (!handle) {
        tryNulls += 1;
        continue;
      }
      acquisitions += 1;
      await checker.enter(
        key,
        holder,
        config.kind === 'advisory' ? undefined : handle.token,
        sharedKind ? mode : undefined,
      );
      await sleep(Math.random() * config.holdMs);
      await checker.exit(key, holder);
      const released = await handle.release();
      if (!released) errors.push(`${holder}: release of ${key} returned false`);
    } catch (error) {
      errors.push(
        `${holder}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
      );
    }
  }
}

try {
  await Promise.all(Array.from({ length: config.callers }, (_, i) => caller(i)));
} finally {
  await checker.close();
  await fence.close();
}
process.stdout.write(JSON.stringify({ acquisitions, tries, tryNulls, errors }) + '\n');
