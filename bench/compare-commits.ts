// The uncontended cost of a plain exclusive lease and lock on two versions of the library, side
// by side in one run: tryLease + release and tryLock + release, 1 caller, each version with its
// own schema migrated by its own migrations, in interleaved rounds (the order rotated each
// round); throughput is the median of the rounds, and the ratio is this tree's / the other's.
//   git worktree add --detach /tmp/prekinds 0995d17^ && ln -s "$PWD/node_modules" /tmp/prekinds/
//   node --import tsx bench/compare-commits.ts /tmp/prekinds [rounds] [roundMs] [url]
// Target (issue 13): the lease kinds leave neither more than 10% slower.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

interface FenceLike {
  migrate(): Promise<unknown>;
  tryLease(
    key: string,
    options: { ttlMs: number },
  ): Promise<{ release(): Promise<unknown> } | null>;
  tryLock(key: string): Promise<{ release(): Promise<unknown> } | null>;
  close(): Promise<void>;
}
type Create = (options: Record<string, unknown>) => FenceLike;

const other = process.argv[2];
if (!other)
  throw new Error('usage: compare-commits.ts <other source tree> [rounds] [roundMs] [url]');
const rounds = Number(process.argv[3] ?? 9);
const roundMs = Number(process.argv[4] ?? 1_000);
const url =
  process.argv[5] ?? process.env.PGFENCE_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const tag = randomBytes(3).toString('hex');

async function open(
  tree: string,
  name: string,
): Promise<{ name: string; fence: FenceLike; schema: string }> {
  const mod = (await import(pathToFileURL(resolve(tree, 'src/index.ts')).href)) as {
    createPgFence: Create;
  };
  const schema = `cmp_${name}_${tag}`;
  const fence = mod.createPgFence({
    connectionString: url,
    schema,
    applicationName: 'pgfence-bench',
  });
  await fence.migrate();
  return { name, fence, schema };
}

const versions = [
  await open(new URL('..', import.meta.url).pathname, 'current'),
  await open(other, 'other'),
];
const ops = {
  lease: async (f: FenceLike, key: string) => {
    const lease = await f.tryLease(key, { ttlMs: 30_000 });
    if (!lease) throw new Error(`tryLease(${key}) returned null on a free key`);
    await lease.release();
  },
  lock: async (f: FenceLike, key: string) => {
    const lock = await f.tryLock(key);
    if (!lock) throw new Error(`tryLock(${key}) returned null on a free key`);
    await lock.release();
  },
};
type Op = keyof typeof ops;
const subjects = versions.flatMap((v) =>
  (Object.keys(ops) as Op[]).map((op) => ({ id: `${v.name}:${op}`, v, op })),
);

async function round(
  s: (typeof subjects)[number],
  ms: number,
): Promise<{ rate: number; lat: number[] }> {
  const lat: number[] = [];
  const start = performance.now();
  const end = start + ms;
  const key = `cmp:${s.op}`;
  while (performance.now() < end) {
    const t0 = performance.now();
    await ops[s.op](s.v.fence, key);
    lat.push(performance.now() - t0);
  }
  return { rate: (lat.length * 1000) / (performance.now() - start), lat };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const loadStart = loadavg()[0]!.toFixed(2);
for (const s of subjects) await round(s, 300); // warm-up: connections, plans
const rates = new Map<string, number[]>();
const lats = new Map<string, number[]>();
for (let r = 0; r < rounds; r += 1) {
  for (let i = 0; i < subjects.length; i += 1) {
    const s = subjects[(i + r) % subjects.length]!;
    const { rate, lat } = await round(s, roundMs);
    rates.set(s.id, [...(rates.get(s.id) ?? []), rate]);
    lats.set(s.id, [...(lats.get(s.id) ?? []), ...lat]);
  }
}
const p = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
console.log(
  `node --import tsx bench/compare-commits.ts ${other} ${rounds} ${roundMs}; load average ${loadStart} at the start, ${loadavg()[0]!.toFixed(2)} at the end`,
);
console.log('| subject | ops/s (median of rounds) | p50 ms | p99 ms |');
console.log('|---|---|---|---|');
for (const s of subjects) {
  const l = lats.get(s.id)!;
  console.log(
    `| ${s.id} | ${Math.round(median(rates.get(s.id)!)).toLocaleString('en-US')} | ${p(l, 0.5).toFixed(2)} | ${p(l, 0.99).toFixed(2)} |`,
  );
}
for (const op of Object.keys(ops) as Op[]) {
  const ratio = median(rates.get(`current:${op}`)!) / median(rates.get(`other:${op}`)!);
  // Per round, too: how far the ratio moves between neighbouring rounds.
  const perRound = rates
    .get(`current:${op}`)!
    .map((c, i) => c / rates.get(`other:${op}`)![i]!)
    .map((x) => x.toFixed(2));
  // The target is "no slower": more than 10% faster is said, not counted against it.
  const verdict =
    ratio < 0.9 ? 'NOT met (slower)' : ratio > 1.1 ? 'met (more than 10% faster)' : 'met';
  console.log(
    `${op}: current / other = ${ratio.toFixed(3)}× (rounds: ${perRound.join(' ')}) — no more than 10% slower: ${verdict}`,
  );
}
const admin = new pg.Client({ connectionString: url });
await admin.connect();
for (const v of versions) {
  await v.fence.close();
  await admin.query(`DROP SCHEMA IF EXISTS "${v.schema}" CASCADE`);
}
await admin.end();
