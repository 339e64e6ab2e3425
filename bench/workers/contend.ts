// A bench process contending for one advisory key. On "open" it connects and warms up; on
// "go" it loops lock → release → `thinkMs` of work outside the lock until the round ends, and
// sends back each grant's times on the machine's shared clock (performance.timeOrigin + now),
// so that the grants of several processes can be put in one order.
// `poll` stands for the waiter pgfence had before waiting in the server: tryLock every
// 4–50 ms (jittered, doubling), as the old SessionLockManager did.
import { performance } from 'node:perf_hooks';
import { createPgFence, type AdvisoryLock, type PgFence } from '../../src/index.js';

type Command =
  | { type: 'open'; url: string; schema: string }
  | { type: 'go'; key: string; waiter: 'queue' | 'poll'; durationMs: number; thinkMs: number };

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let fence: PgFence | undefined;

async function take(key: string, waiter: 'queue' | 'poll'): Promise<AdvisoryLock> {
  if (waiter === 'queue') return fence!.lock(key, { waitMs: 30_000 });
  let retryMs = 4;
  for (;;) {
    const lock = await fence!.tryLock(key);
    if (lock) return lock;
    await sleep(retryMs * (0.5 + Math.random() / 2));
    retryMs = Math.min(retryMs * 2, 50);
  }
}

process.on('disconnect', () => void fence?.close().finally(() => process.exit(0)));
process.on('message', (command: Command) => {
  void (async () => {
    try {
      if (command.type === 'open') {
        fence = createPgFence({
          connectionString: command.url,
          schema: command.schema,
          poolSize: 1,
          advisorySessions: 1,
          applicationName: 'pgfence-bench',
        });
        await (await fence.lock(`warm:${process.pid}`)).release();
        process.send?.({ type: 'ready' });
        return;
      }
      const grants: [asked: number, granted: number, released: number][] = [];
      const until = now() + command.durationMs;
      while (now() < until) {
        const asked = now();
        const lock = await take(command.key, command.waiter);
        const granted = now();
        await lock.release();
        grants.push([asked, granted, now()]);
        await sleep(command.thinkMs);
      }
      process.send?.({ type: 'done', grants });
    } catch (error) {
      process.send?.({ type: 'error', message: String(error) });
    }
  })();
});
