// The soak's other process: tries to take the holder's keys (it must never get one) and runs a
// reaper beside it. argv[2]: JSON { url, schema, keys, seconds }. Prints one JSON line at the end.
import { createPgFence } from '../../src/index.js';

const config = JSON.parse(process.argv[2]!) as {
  url: string;
  schema: string;
  keys: number;
  seconds: number;
};
const errors: string[] = [];
const fence = createPgFence({
  connectionString: config.url,
  schema: config.schema,
  onError: (e) => errors.push(String(e)),
});
const reaper = fence.startReaper({ intervalMs: 1_000 });
const until = Date.now() + config.seconds * 1000;
let attempts = 0;
let granted = 0;
let failed = 0;
while (Date.now() < until) {
  const keys = Array.from({ length: 20 }, () => `soak:${Math.floor(Math.random() * config.keys)}`);
  const results = await Promise.allSettled(keys.map((k) => fence.tryLease(k, { ttlMs: 1_000 })));
  for (const r of results) {
    attempts += 1;
    if (r.status === 'rejected') failed += 1;
    else if (r.value) {
      granted += 1;
      await r.value.release().catch(() => {});
    }
  }
  await new Promise((r) => setTimeout(r, 50));
}
await reaper.stop();
await fence.close();
process.stdout.write(
  JSON.stringify({ attempts, granted, failed, errors: errors.slice(0, 3) }) + '\n',
);
