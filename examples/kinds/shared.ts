// Shared and exclusive leases: readers overlap each other, a writer is alone, and a writer's
// token is larger than every token issued for the key before it.
// Run: DATABASE_URL=postgres://… npx tsx examples/kinds/shared.ts
import { pool, sleep, start } from './connect.js';

const fence = await start();
let readersNow = 0;
let mostReaders = 0;
const readerTokens: bigint[] = [];

async function read(): Promise<void> {
  await fence.withLease(
    'doc:7',
    async (lease) => {
      readerTokens.push(lease.token);
      mostReaders = Math.max(mostReaders, ++readersNow);
      await sleep(200); // render the document
      readersNow--;
    },
    { mode: 'shared', waitMs: 10_000 },
  );
}

const readers = [read(), read(), read()];
await sleep(50); // the readers hold the key: the writer waits for them
const writerToken = await fence.withLease(
  'doc:7',
  async (lease) => {
    if (readersNow !== 0) throw new Error('a writer overlapped a reader');
    return lease.token; // pass it to the write: WHERE pgfence.is_current('doc:7', $token)
  },
  { waitMs: 10_000 },
);
await Promise.all(readers);

console.log(`readers at once: ${mostReaders}`);
console.log(`writer token above every reader token: ${readerTokens.every((t) => writerToken > t)}`);
await fence.close();
await pool.end();
