// Another service: takes the given advisory keys (waiting up to waitMs for each), reports which
// it got, and exits (which releases them).
// argv[2]: JSON { url, schema, keys, waitMs }
import { createPgFence, type AdvisoryLock } from '../../../src/index.js';

interface Config {
  url: string;
  schema: string;
  keys: string[];
  waitMs: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const fence = createPgFence({ connectionString: config.url, schema: config.schema, poolSize: 1 });
const got: string[] = [];
const failed: string[] = [];
const locks: AdvisoryLock[] = [];
try {
  await Promise.all(
    config.keys.map(async (key) => {
      try {
        locks.push(await fence.lock(key, { waitMs: config.waitMs }));
        got.push(key);
      } catch (error) {
        failed.push(`${key}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }),
  );
  for (const lock of locks) await lock.release();
} finally {
  await fence.close();
}
process.stdout.write(JSON.stringify({ got: got.sort(), failed }) + '\n');
