// `pgfence ls` as a subprocess against a database with a live lease, one close to expiry, a
// waiter in the lease queue, an advisory holder and an advisory waiter: the JSON and the table
// show each with its mode, owner, token and age (by the database clock) and mark the lease close
// to expiry; `--watch` prints frames until SIGINT and exits 0; an unreachable database is 69.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type Lease, type PgFence } from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { cli, pgfence, until, useCliSchema } from '../support/cli.js';

const { url, schema, admin, db } = useCliSchema();
const ESC = String.fromCharCode(27);

interface HolderJson {
  owner: string;
  token: string;
  heldMs: number;
  expiresInMs: number;
  expiring: boolean;
}
interface LsJson {
  at: string;
  expiringWithinMs: number;
  leases: (HolderJson & {
    key: string;
    mode: string;
    permits: number | null;
    holders: HolderJson[];
    waiters: { owner: string; mode: string; waitingMs: number; waitingSince: string }[];
  })[];
  advisory: {
    lockId: string;
    mode: string;
    pid: number;
    applicationName: string | null;
    granted: boolean;
    waitingMs: number | null;
  }[];
}

/** The term of the lease close to expiry: it has run nine tenths of it when ls looks. */
const TERM_MS = 10 * 60_000;
const SOON_LEFT_MS = TERM_MS / 10;
/** What ls is told counts as close: more than SOON_LEFT_MS, far less than the live lease's. */
const WITHIN = '90s';

let holder: PgFence;
let waiter: PgFence;
let live: Lease;
let soon: Lease;
let waitingLease: Promise<unknown>;
const stopWaiting = new AbortController();
let advisoryRelease: () => Promise<unknown>;
const advisoryWaiter = new pg.Client({ connectionString: url, application_name: 'ls-adv-waiter' });
let advisoryWait: Promise<unknown>;
const advisoryId = advisoryKeyId(schema, 'ls:adv');

beforeAll(async () => {
  holder = createPgFence({ connectionString: url, schema, applicationName: 'ls-holder' });
  waiter = createPgFence({ connectionString: url, schema, applicationName: 'ls-waiter' });
  live = await holder.lease('ls:live', { ttlMs: TERM_MS });
  soon = await holder.lease('ls:soon', { ttlMs: SOON_LEFT_MS });
  // As if it had been acquired nine tenths of a term ago and never renewed: only the start
  // moves, so the time left is still the database's own.
  await admin.query(
    `UPDATE "${schema}".leases SET acquired_at = acquired_at - $1 * interval '1 millisecond'
     WHERE key = 'ls:soon'`,
    [TERM_MS - SOON_LEFT_MS],
  );
  waitingLease = waiter
    .lease('ls:live', { waitMs: 120_000, signal: stopWaiting.signal })
    .catch(() => {});
  const lock = await holder.lock('ls:adv');
  advisoryRelease = () => lock.release();
  await advisoryWaiter.connect();
  advisoryWait = advisoryWaiter
    .query('SELECT pg_advisory_lock_shared($1::bigint)', [advisoryId.toString()])
    .catch(() => {});
  await until(async () => {
    const { rows } = await admin.query(
      `SELECT (SELECT count(*)::int FROM "${schema}".lease_waiters WHERE key = 'ls:live') AS q,
              (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                 AND pid = $1) AS a`,
      [(advisoryWaiter as unknown as { processID: number }).processID],
    );
    return rows[0].q === 1 && rows[0].a === 1;
  }, 'the lease waiter and the advisory waiter to queue');
}, 60_000);

afterAll(async () => {
  stopWaiting.abort();
  await waitingLease;
  await advisoryRelease?.();
  await advisoryWait;
  await advisoryWaiter.end();
  await live?.release();
  await soon?.release();
  await waiter?.close();
  await holder?.close();
});

const lsJson = async (...flags: string[]): Promise<LsJson> => {
  const r = await pgfence(['ls', ...db(), '--json', ...flags]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as LsJson;
};

describe('pgfence ls', () => {
  it('--json: holders, waiters and advisory locks with mode, owner, token, age and the mark', async () => {
    const out = await lsJson('--expiring-within', WITHIN);
    expect(out.expiringWithinMs).toBe(90_000);
    expect(Date.parse(out.at)).not.toBeNaN();
    const byKey = new Map(out.leases.map((l) => [l.key, l]));

    const l = byKey.get('ls:live')!;
    expect(l).toMatchObject({
      mode: 'exclusive',
      permits: null,
      owner: holder.owner,
      token: live.token.toString(),
      expiring: false,
    });
    expect(l.heldMs).toBeGreaterThanOrEqual(0);
    expect(Math.abs(l.heldMs + l.expiresInMs - TERM_MS)).toBeLessThanOrEqual(1);
    expect(l.waiters).toEqual([
      {
        owner: waiter.owner,
        mode: 'exclusive',
        permits: null,
        waitingSince: expect.any(String),
        waitingMs: expect.any(Number),
      },
    ]);
    expect(l.waiters[0]!.waitingMs).toBeGreaterThanOrEqual(0);

    const s = byKey.get('ls:soon')!;
    expect(s).toMatchObject({ owner: holder.owner, token: soon.token.toString(), expiring: true });
    expect(s.holders).toEqual([expect.objectContaining({ expiring: true })]);
    // Its age counts from the start the database has: nine tenths of the term ago.
    expect(s.heldMs).toBeGreaterThanOrEqual(TERM_MS - SOON_LEFT_MS);
    expect(s.expiresInMs).toBeLessThanOrEqual(SOON_LEFT_MS);
    expect(Math.abs(s.heldMs + s.expiresInMs - TERM_MS)).toBeLessThanOrEqual(1);

    const adv = out.advisory.filter((a) => a.lockId === advisoryId.toString());
    expect(adv).toEqual([
      expect.objectContaining({
        mode: 'exclusive',
        applicationName: 'ls-holder',
        granted: true,
        waitingMs: null,
      }),
      expect.objectContaining({
        mode: 'shared',
        applicationName: 'ls-adv-waiter',
        granted: false,
        waitingMs: expect.any(Number),
      }),
    ]);

    // With the default bound (5s), a minute left is not close to expiry.
    const byDefault = await lsJson();
    expect(byDefault.leases.find((x) => x.key === 'ls:soon')!.expiring).toBe(false);
  });

  it('the table: a row per holder and waiter, ages, and a plain mark without a terminal', async () => {
    const r = await pgfence(['ls', ...db(), '--expiring-within', WITHIN], { FORCE_COLOR: '' });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    const rows = r.stdout.split('\n');
    expect(rows[0]).toMatch(/^KEY\s+STATE\s+MODE\s+TOKEN\s+OWNER\s+AGE\s+EXPIRES IN$/);
    const age = String.raw`(\d+ms|\d+\.\ds|\d+m\d\ds)`;
    const row = (...cells: string[]) =>
      rows.filter((line) => new RegExp(`^${cells.join(String.raw`\s+`)}$`).test(line));
    expect(
      row('ls:live', 'held', 'exclusive', `${live.token}`, holder.owner, age, age),
    ).toHaveLength(1);
    expect(row('ls:live', 'waiting', 'exclusive', '-', waiter.owner, age, '-')).toHaveLength(1);
    // Nine minutes old, and marked.
    expect(
      row(
        'ls:soon',
        'held',
        'exclusive',
        `${soon.token}`,
        holder.owner,
        '9m\\d\\ds',
        `${age} \\(expiring\\)`,
      ),
    ).toHaveLength(1);
    expect(r.stdout.match(/\(expiring\)/g)).toHaveLength(1);
    expect(rows).toContainEqual(
      expect.stringMatching(/^ADVISORY LOCK\s+KEY\s+STATE\s+MODE\s+PID\s+APPLICATION\s+AGE$/),
    );
    const id = advisoryId.toString();
    expect(row(id, '-', 'held', 'exclusive', '\\d+', 'ls-holder', '-')).toHaveLength(1);
    expect(row(id, '-', 'waiting', 'shared', '\\d+', 'ls-adv-waiter', age)).toHaveLength(1);

    // Coloured when asked (a terminal, or FORCE_COLOR): the mark is still there, in colour.
    const coloured = await pgfence(['ls', ...db(), '--expiring-within', WITHIN], {
      FORCE_COLOR: '1',
      NO_COLOR: '',
    });
    expect(coloured.stdout).toMatch(new RegExp(`${ESC}\\[[\\d;]+m[^${ESC}]*\\(expiring\\)`));
  });

  it('--watch --json prints a frame per interval, ages growing, and exits 0 on SIGINT', async () => {
    const watch = cli(['ls', ...db(), '--watch', '--json', '--interval', '200ms']);
    let out = '';
    watch.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.split('\n').filter(Boolean).length >= 2, 'two frames');
    watch.kill('SIGINT');
    const done = await watch.finished;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    const frames = done.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LsJson);
    expect(frames.length).toBeGreaterThanOrEqual(2);
    const waited = frames.map(
      (f) => f.leases.find((l) => l.key === 'ls:live')!.waiters[0]!.waitingMs,
    );
    expect(waited[1]!).toBeGreaterThan(waited[0]!);
    expect(Date.parse(frames[1]!.at)).toBeGreaterThan(Date.parse(frames[0]!.at));
  });

  it('--watch without a terminal prints whole frames one after another, and exits 0 on SIGINT', async () => {
    const watch = cli(['ls', ...db(), '--watch', '--interval', '200ms'], { FORCE_COLOR: '' });
    let out = '';
    watch.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const header = /^Every 200ms: pgfence ls {2}\d{4}-\d\d-\d\dT[\d:.]+Z$/gm;
    await until(() => (out.match(header)?.length ?? 0) >= 3, 'three frames');
    watch.kill('SIGINT');
    const done = await watch.finished;
    expect(done.code).toBe(0);
    expect(done.stdout).not.toContain(ESC);
    // Each frame: its header, a blank line, the tables; frames one blank line apart.
    const frames = done.stdout.split(/\n(?=Every 200ms: )/);
    expect(frames.length).toBeGreaterThanOrEqual(3);
    expect(done.stdout.match(/\n\nEvery 200ms: /g)).toHaveLength(frames.length - 1);
    for (const frame of frames) {
      expect(frame).toMatch(/^Every 200ms: pgfence ls {2}\S+\n\nKEY\s+STATE/);
      expect(frame).toMatch(/\nls:soon\s+held\s/);
    }
  });

  it('--watch exits 69 when the database cannot be reached', async () => {
    const r = await pgfence([
      'ls',
      '--url',
      'postgres://nobody@127.0.0.1:1/none',
      '--schema',
      schema,
      '--watch',
    ]);
    expect(r.code).toBe(69);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
