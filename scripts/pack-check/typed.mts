// A typed user of the package, checked by `tsc --strict` and then run: `await using` lowered
// by TypeScript for Node 20, the types of leases and tokens, the typed errors.
import pg from 'pg';
import { createPgFence, isLockError, type Lease, type PgFence } from 'pgfence';

const pool = new pg.Pool({ connectionString: process.env.PACK_URL, max: 4 });
const fence: PgFence = createPgFence({ pool, schema: process.env.PACK_SCHEMA ?? 'pgfence' });
try {
  await fence.migrate();
  let token: bigint;
  {
    await using lease: Lease = await fence.lease('pack:typed', { ttlMs: 10_000 });
    token = lease.token;
    const expires: Date = lease.expiresAt;
    if (!(expires instanceof Date)) throw new Error('expiresAt is not a Date');
  }
  // Disposed at the end of the block: the key is free again.
  const again = await fence.tryLease('pack:typed');
  if (!again || again.token <= token) throw new Error('await using did not release the lease');
  await again.release();
  try {
    await again.release();
  } catch (err) {
    if (!isLockError(err, 'ALREADY_RELEASED')) throw err;
    const code: string = err.code;
    console.log(`    typed: await using released token ${token}; then ${code}`);
  }
} finally {
  await fence.close();
  await pool.end();
}
