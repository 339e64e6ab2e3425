// The package from ESM: migrate, a lease with its fencing token, isCurrent, a lock, close.
import assert from 'node:assert/strict';
import { createPgFence, LockTimeoutError } from 'pgfence';

const fence = createPgFence({
  connectionString: process.env.PACK_URL,
  schema: process.env.PACK_SCHEMA,
});
try {
  await fence.migrate();
  const lease = await fence.lease('pack:esm', { ttlMs: 10_000 });
  assert.equal(typeof lease.token, 'bigint');
  assert.equal(await fence.isCurrent('pack:esm', lease.token), true);
  await assert.rejects(fence.lease('pack:esm', { waitMs: 50 }), LockTimeoutError);
  assert.equal(await lease.release(), true);
  await fence.withLock('pack:esm-lock', async (lock) => assert.equal(lock.signal.aborted, false));
  console.log(`    ESM: lease token ${lease.token}, lock taken and released`);
} finally {
  await fence.close();
}
