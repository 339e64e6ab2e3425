// A process that takes one lease and, once it finds the lease lost (e.g. after being paused
// with SIGSTOP past its TTL), reports what its handle says: the signal's reason, what extend
// and release do, and whether its token is still current.
// argv[2]: JSON { url, schema, key, ttlMs, autoRenew }
import { createPgFence } from '../../../src/index.js';

const config = JSON.parse(process.argv[2]!) as {
  url: string;
  schema: string;
  key: string;
  ttlMs: number;
  autoRenew: boolean;
};
const fence = createPgFence({ connectionString: config.url, schema: config.schema });
const print = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const name = (error: unknown) => (error instanceof Error ? error.name : String(error));

const lease = await fence.lease(config.key, { ttlMs: config.ttlMs, autoRenew: config.autoRenew });
print({ event: 'acquired', token: lease.token.toString(), pid: process.pid });
await new Promise<void>((resolve) => {
  if (lease.signal.aborted) resolve();
  lease.signal.addEventListener('abort', () => resolve(), { once: true });
});
const reason = name(lease.signal.reason);
const extend = await lease.extend().then(
  () => 'ok',
  (error: unknown) => name(error),
);
const released = await lease.release();
const current = await fence.isCurrent(config.key, lease.token);
print({ event: 'lost', reason, extend, released, current });
await fence.close();
