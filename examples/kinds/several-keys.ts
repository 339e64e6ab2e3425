// Several keys at once: every key or none, also while waiting; overlapping sets asked in
// opposite orders never deadlock, and the leases come back in the order asked.
// Run: DATABASE_URL=postgres://… npx tsx examples/kinds/several-keys.ts
import { pool, sleep, start } from './connect.js';

const fence = await start();
const balances = new Map([
  ['acct:1', 100],
  ['acct:2', 100],
]);

async function transfer(from: string, to: string, amount: number): Promise<void> {
  const [a, b] = await fence.leaseAll([from, to], { ttlMs: 10_000, waitMs: 10_000 });
  try {
    if (a?.key !== from || b?.key !== to) throw new Error('leases out of order');
    // Fence both writes with a.token and b.token; here, the balances in memory.
    const left = balances.get(from)! - amount;
    await sleep(5);
    balances.set(from, left);
    balances.set(to, balances.get(to)! + amount);
  } finally {
    await Promise.all([a?.release(), b?.release()]);
  }
}

// Twenty transfers each way at once: the sets overlap, in opposite orders.
await Promise.all(
  Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0 ? transfer('acct:1', 'acct:2', 1) : transfer('acct:2', 'acct:1', 1),
  ),
);
const total = [...balances.values()].reduce((x, y) => x + y, 0);
console.log(
  `20 transfers, no deadlock; balances ${[...balances.values()].join(' and ')}, total ${total}`,
);
await fence.close();
await pool.end();
