// Scenario 7: contended acquire across processes against ZooKeeper and etcd. 8 processes
// contend for one key, each looping acquire → check exclusivity → release → 1 ms of work
// outside the lock. Subjects, side by side in one run: pgfence lease and lock (a PgFence per
// process), ZooKeeper with Curator's mutex recipe on one server and on a 3-server ensemble,
// and etcd's election recipe on one node; the servers are started here on loopback and
// stopped afterwards, and a subject whose server is not installed is skipped.
// Reported per subject: grants/s, the acquire wait (asked → granted) p50/p99, each process's
// share as a fraction of a fair share, how often the releasing process took the key straight
// back, and for pgfence the database transactions per grant (pg_stat_database's commits +
// rollbacks of a database of the subject's own, over the run, ÷ grants): one release should
// wake one waiter, not the herd. The servers the bench starts fsync as PostgreSQL does.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createPgFence } from '../../src/index.js';
import { startEtcd } from '../baselines/etcd.js';
import { startZooKeeper, type StartedServers } from '../baselines/zookeeper.js';
import { describe } from '../lib/arena.js';
import type { BenchContext } from '../lib/context.js';
import { Latencies } from '../lib/histogram.js';
import { errorMessage } from '../lib/variants.js';
import type { Grant, MutexCommand, MutexReply, MutexSubject } from '../workers/mutex.js';

const SCENARIO = '7. contended acquire vs ZooKeeper and etcd (8 processes, one key)';
const PROCESSES = 8;
const THINK_MS = 1;
const WORKER = fileURLToPath(new URL('../workers/mutex.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SUBJECTS: { id: MutexSubject; label: string }[] = [
  { id: 'pgfence-lease', label: 'pgfence lease (a PgFence per process)' },
  { id: 'pgfence-lock', label: 'pgfence lock (a PgFence per process)' },
  { id: 'zk1', label: 'ZooKeeper, 1 server (Curator mutex recipe)' },
  { id: 'zk3', label: 'ZooKeeper, 3-server ensemble (Curator mutex recipe)' },
  { id: 'etcd', label: 'etcd, 1 node (etcd3 election recipe)' },
];

function next(child: ChildProcess): Promise<MutexReply> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`a bench process exited (${code})`));
    child.once('exit', onExit);
    child.once('message', (m: MutexReply) => {
      child.removeListener('exit', onExit);
      if (m.type === 'error') reject(new Error(m.message));
      else resolve(m);
    });
  });
}

/** Sends `command` to every process and waits for all of their replies. */
function all(children: ChildProcess[], command: MutexCommand): Promise<MutexReply[]> {
  return Promise.all(
    children.map((c) => {
      const reply = next(c);
      c.send(command);
      return reply;
    }),
  );
}

/**
 * A database of its own for a pgfence subject, so that its transaction count is its own (the
 * bench's usual database is shared with whoever else uses the server). Falls back to the
 * run's database, whose count is then not reported.
 */
interface SubjectDb {
  url: string;
  name: string | undefined;
}

async function subjectDb(ctx: BenchContext, id: string): Promise<SubjectDb> {
  const name = `${ctx.runId}_${id.replace(/[^a-z0-9]/g, '_')}`;
  try {
    await ctx.admin.query(`CREATE DATABASE "${name}"`);
  } catch (error) {
    ctx.log(`scenario 7: no database of its own for ${id} (${errorMessage(error)})`);
    return { url: ctx.url, name: undefined };
  }
  // Function calls are counted too (a superuser's setting; without it they are not shown).
  await ctx.admin.query(`ALTER DATABASE "${name}" SET track_functions = 'all'`).catch(() => {});
  const u = new URL(ctx.url);
  u.pathname = `/${name}`;
  const fence = createPgFence({ connectionString: u.toString(), schema: ctx.schema, poolSize: 1 });
  try {
    await fence.migrate();
  } finally {
    await fence.close();
  }
  return { url: u.toString(), name };
}

/**
 * Commits + rollbacks of `name` once none of its sessions is left: a backend flushes its
 * counts when it exits (an idle one may hold them for seconds), so every session is closed
 * before counting.
 */
/** pgfence's functions called in `db`, most called first (empty when not tracked). */
async function functionCalls(db: SubjectDb): Promise<[string, number][]> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'pgfence-bench' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ f: string; n: string }>(
      `SELECT funcname AS f, calls AS n FROM pg_stat_user_functions ORDER BY calls DESC`,
    );
    return rows.map((r) => [r.f, Number(r.n)]);
  } finally {
    await client.end().catch(() => {});
  }
}

async function transactions(ctx: BenchContext, name: string): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { rows } = await ctx.admin.query<{ n: string }>(
      'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1',
      [name],
    );
    if (Number(rows[0]?.n ?? 0) === 0) break;
    if (Date.now() > deadline) throw new Error(`sessions of ${name} still open after 15 s`);
    await sleep(50);
  }
  await sleep(100);
  const { rows } = await ctx.admin.query<{ n: string }>(
    `SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1`,
    [name],
  );
  return Number(rows[0]?.n ?? NaN);
}

interface Tally {
  waits: Latencies;
  perProcess: number[];
  self: number;
  grants: number;
  violations: number;
  ms: number;
  error: string | undefined;
}

export async function contendedBaselines(ctx: BenchContext): Promise<void> {
  const config = `${PROCESSES} processes, ${THINK_MS} ms outside`;
  const servers: Partial<Record<'zk1' | 'zk3' | 'etcd', StartedServers>> = {};
  const unavailable = new Map<MutexSubject, { status: 'skipped' | 'failed'; reason: string }>();
  const dbs = new Map<MutexSubject, SubjectDb>();
  const children: ChildProcess[] = [];
  const checkRoot = await mkdtemp(join(tmpdir(), 'pgfence-bench-mutex-'));
  const tallies = new Map<MutexSubject, Tally>();
  const xacts = new Map<MutexSubject, number>();
  /** Transactions of one open + close of the 8 PgFences, and how many rounds did that. */
  const overhead = new Map<MutexSubject, number>();
  const pgRounds = new Map<MutexSubject, number>();
  const calls = new Map<MutexSubject, [string, number][]>();
  try {
    const starts: [MutexSubject, () => Promise<StartedServers>][] = [
      ['zk1', () => startZooKeeper(1)],
      ['zk3', () => startZooKeeper(3)],
      ['etcd', startEtcd],
    ];
    await Promise.all(
      starts.map(async ([id, start]) => {
        try {
          servers[id as 'zk1' | 'zk3' | 'etcd'] = await start();
        } catch (error) {
          unavailable.set(id, describe(error));
        }
      }),
    );
    for (const [id, s] of Object.entries(servers)) {
      ctx.log(`scenario 7: ${id} at ${s.connect} (pids ${s.pids.join(', ')})`);
    }
    for (let i = 0; i < PROCESSES; i += 1) {
      children.push(
        fork(WORKER, [], {
          execArgv: ['--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
    }
    // Each pgfence round opens a PgFence per process (connect, one warm-up lock and lease) and
    // closes it after: one such open + close is counted here, alone, and taken off each round.
    for (const id of ['pgfence-lease', 'pgfence-lock'] as const) {
      const db = await subjectDb(ctx, id);
      dbs.set(id, db);
      if (!db.name) continue;
      const before = await transactions(ctx, db.name);
      await all(children, { type: 'pg-open', url: db.url, schema: ctx.schema });
      await all(children, { type: 'pg-close' });
      const after = await transactions(ctx, db.name);
      overhead.set(id, after - before);
      xacts.set(id, -after);
    }
    await all(children, {
      type: 'open',
      ...(servers.zk1 ? { zk1: servers.zk1.connect } : {}),
      ...(servers.zk3 ? { zk3: servers.zk3.connect } : {}),
      ...(servers.etcd ? { etcd: servers.etcd.connect } : {}),
    });
    const running = SUBJECTS.filter((s) => !unavailable.has(s.id));
    for (const s of running) {
      tallies.set(s.id, {
        waits: new Latencies(),
        perProcess: new Array<number>(PROCESSES).fill(0),
        self: 0,
        grants: 0,
        violations: 0,
        ms: 0,
        error: undefined,
      });
    }
    const rounds = Math.max(2, ctx.params.handoffRounds);
    for (let r = 0; r < rounds; r += 1) {
      for (let i = 0; i < running.length; i += 1) {
        const subject = running[(i + r) % running.length]!;
        const tally = tallies.get(subject.id)!;
        if (tally.error !== undefined) continue;
        const db = dbs.get(subject.id);
        try {
          if (db) {
            pgRounds.set(subject.id, (pgRounds.get(subject.id) ?? 0) + 1);
            await all(children, { type: 'pg-open', url: db.url, schema: ctx.schema });
          }
          const started = performance.now();
          const done = await all(children, {
            type: 'go',
            subject: subject.id,
            key: `contend7:${ctx.runId}:${subject.id}:${r}`,
            durationMs: ctx.params.handoffRoundMs,
            thinkMs: THINK_MS,
            checkDir: join(checkRoot, `${subject.id}-${r}`),
          });
          tally.ms += performance.now() - started;
          if (db) await all(children, { type: 'pg-close' });
          const grants: { p: number; g: Grant }[] = [];
          for (const [p, d] of done.entries()) {
            if (d.type !== 'done') continue;
            tally.violations += d.violations;
            for (const g of d.grants) grants.push({ p, g });
          }
          grants.sort((a, b) => a.g[1] - b.g[1]);
          for (const [k, { p, g }] of grants.entries()) {
            tally.grants += 1;
            tally.perProcess[p]! += 1;
            tally.waits.record(g[1] - g[0]);
            if (grants[k - 1]?.p === p) tally.self += 1;
          }
        } catch (error) {
          tally.error = errorMessage(error);
          ctx.log(`scenario 7: ${subject.id} failed: ${tally.error}`);
          if (db) await all(children, { type: 'pg-close' }).catch(() => {});
        }
      }
    }
  } finally {
    for (const c of children) if (c.connected) c.disconnect();
    await Promise.all(
      children.map((c) =>
        c.exitCode === null ? new Promise((r) => c.once('exit', r)) : Promise.resolve(),
      ),
    );
    await Promise.allSettled(Object.values(servers).map((s) => s.stop()));
    await rm(checkRoot, { recursive: true, force: true });
  }
  for (const [id, db] of dbs) {
    if (!db.name) continue;
    try {
      const opened = (overhead.get(id) ?? NaN) * (pgRounds.get(id) ?? 0);
      xacts.set(id, (xacts.get(id) ?? NaN) + (await transactions(ctx, db.name)) - opened);
    } catch (error) {
      ctx.log(`scenario 7: no transaction count for ${id}: ${errorMessage(error)}`);
      xacts.delete(id);
    }
    calls.set(id, await functionCalls(db).catch(() => []));
    await ctx.admin.query(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`).catch(() => {});
  }

  const p99 = new Map<MutexSubject, number>();
  for (const s of SUBJECTS) {
    const gone = unavailable.get(s.id);
    const t = tallies.get(s.id);
    if (gone || !t) {
      const status = gone?.status ?? 'failed';
      const reason = gone?.reason ?? 'did not run';
      ctx.report.row({
        scenario: SCENARIO,
        config,
        subject: s.label,
        status,
        note: `${status}: ${reason}`,
      });
      continue;
    }
    if (t.error !== undefined) {
      ctx.report.row({
        scenario: SCENARIO,
        config,
        subject: s.label,
        status: 'failed',
        note: `failed: ${t.error}`,
      });
      continue;
    }
    const fair = t.grants / PROCESSES;
    const shares = t.perProcess.map((n) => n / fair);
    const minShare = Math.min(...shares);
    const x = xacts.get(s.id);
    const perGrant = x === undefined ? undefined : x / Math.max(1, t.grants);
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: s.label,
      status: 'ok',
      opsPerSec: (t.grants * 1000) / t.ms,
      p50Ms: t.waits.at(50),
      p99Ms: t.waits.at(99),
      note:
        `acquire wait; grants/s; shares of a fair share: min ${minShare.toFixed(2)}, ` +
        `max ${Math.max(...shares).toFixed(2)}; self re-grants ${((100 * t.self) / Math.max(1, t.grants)).toFixed(0)}%` +
        (perGrant === undefined
          ? dbs.has(s.id)
            ? '; transactions per grant not counted (no database of its own)'
            : ''
          : `; ${perGrant.toFixed(2)} database transactions per grant ` +
            `(net of ${overhead.get(s.id) ?? '?'} per round for opening and closing the PgFences)`) +
        ((calls.get(s.id) ?? []).length > 0
          ? `; function calls per grant (warm-ups included): ${calls
              .get(s.id)!
              .slice(0, 4)
              .map(([f, n]) => `${f} ${(n / Math.max(1, t.grants)).toFixed(2)}`)
              .join(', ')}`
          : '') +
        (t.violations > 0 ? `; MUTUAL EXCLUSION VIOLATED ${t.violations}×` : ''),
    });
    p99.set(s.id, t.waits.at(99));
    ctx.report.metric(`contended7.${s.id}.p99`, t.waits.at(99));
    ctx.report.metric(`contended7.${s.id}.min-share`, t.violations > 0 ? NaN : minShare);
    if (perGrant !== undefined) ctx.report.metric(`contended7.${s.id}.xacts-per-grant`, perGrant);
  }
  const ratio = (a: MutexSubject, b: MutexSubject) => (p99.get(a) ?? NaN) / (p99.get(b) ?? NaN);
  const cfg = `${PROCESSES} processes`;
  ctx.report.ratio(
    SCENARIO,
    cfg,
    'acquire p99: pgfence lease / ZooKeeper 3 servers',
    ratio('pgfence-lease', 'zk3'),
    'contended7.lease-vs-zk3',
  );
  ctx.report.ratio(
    SCENARIO,
    cfg,
    'acquire p99: pgfence lock / ZooKeeper 3 servers',
    ratio('pgfence-lock', 'zk3'),
    'contended7.lock-vs-zk3',
  );
  ctx.report.ratio(
    SCENARIO,
    cfg,
    'acquire p99: pgfence lease / ZooKeeper 1 server',
    ratio('pgfence-lease', 'zk1'),
  );
  ctx.report.ratio(
    SCENARIO,
    cfg,
    'acquire p99: pgfence lock / ZooKeeper 1 server',
    ratio('pgfence-lock', 'zk1'),
  );
  ctx.report.ratio(
    SCENARIO,
    cfg,
    'acquire p99: pgfence lease / etcd 1 node',
    ratio('pgfence-lease', 'etcd'),
  );
}
