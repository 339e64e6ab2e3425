// A semaphore: at most N holders of a key at once, each a lease with its own token.
// Run: DATABASE_URL=postgres://… npx tsx examples/kinds/semaphore.ts
import { PermitsMismatchError } from '../../src/index.js';
import { pool, sleep, start } from './connect.js';

const fence = await start();
let now = 0;
let most = 0;
const tokens = new Set<bigint>();

async function callPartner(): Promise<void> {
  const permit = await fence.lease('partner-api', { permits: 2, ttlMs: 30_000, waitMs: 10_000 });
  try {
    tokens.add(permit.token);
    most = Math.max(most, ++now);
    await sleep(100); // the call, under permit.signal
    now--;
  } finally {
    await permit.release();
  }
}

await Promise.all(Array.from({ length: 6 }, callPartner));
console.log(`holders at once: ${most} of 2 permits; ${tokens.size} distinct tokens for 6 calls`);

const a = await fence.tryLease('partner-api', { permits: 2 });
const b = await fence.tryLease('partner-api', { permits: 2 });
const c = await fence.tryLease('partner-api', { permits: 2 });
console.log(`a third tryLease while both permits are held: ${c}`);
const wrong = await fence.tryLease('partner-api', { permits: 3 }).catch((e: unknown) => e);
console.log(`another permit count: ${wrong instanceof PermitsMismatchError ? wrong.code : wrong}`);
await a?.release();
await b?.release();
await fence.close();
await pool.end();
