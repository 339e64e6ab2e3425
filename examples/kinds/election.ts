// Leader election: one leader at a time, each term with a larger token; resigning hands over
// at once; an observer sees every term in order.
// Run: DATABASE_URL=postgres://… npx tsx examples/kinds/election.ts
import { openFence, pool, sleep, start } from './connect.js';

const a = await start();
const b = openFence(); // a second instance of the service (another process, in real life)

const stop = new AbortController();
const seen: string[] = [];
const watching = (async () => {
  for await (const leader of a.observe('scheduler', { signal: stop.signal })) {
    seen.push(leader ? `${leader.value} (term ${leader.token})` : 'nobody');
  }
})();

const first = await a.campaign('scheduler', { value: 'host-a', ttlMs: 10_000 });
first.signal.addEventListener('abort', () => console.log('host-a lost its term'));
const second = b.campaign('scheduler', { value: 'host-b', ttlMs: 10_000 }); // waits
console.log(`leader: ${(await a.leader('scheduler'))?.value}`);
await first.release(); // step down: host-b is elected at once
const term = await second;
console.log(
  `leader: ${(await a.leader('scheduler'))?.value}, later term: ${term.token > first.token}`,
);
await term.release();
await sleep(200);
stop.abort();
await watching;
console.log(`observed: ${seen.join(' -> ')}`);
await Promise.all([a.close(), b.close()]);
await pool.end();
