// One failover under load, end to end: a cluster (quorum or asynchronous), pgfence migrated
// through the client proxy, five worker processes (two lease writers with fenced writes, two
// advisory lockers, one holder of 30 auto-renewed leases), then the fault — SIGKILL of every
// primary process, with the clients' sockets reset or gone silent, optionally after stalling
// replication — a promotion, the proxy retargeted, more load, and the figures.
import pg from 'pg';
import { createPgFence } from '../../../src/index.js';
import { analyseChecker, createChecker, type CheckerFigures } from '../mutex-checker.js';
import { processScript, startScript, type Finished } from '../spawn.js';
import { sleep } from '../wait.js';
import { pickStandby, startCluster, type Cluster, type Replication } from './cluster.js';
import {
  analyseFenceLog,
  createFenceLog,
  dropSchema,
  FenceLogClient,
  longestOverlapMs,
  readFenceLog,
  type FenceFigures,
} from './fence-log.js';

export interface ScenarioSpec {
  replication: Replication;
  /** 'reset': the clients' connections end with the server; 'silent': they go quiet for ever. */
  sockets: 'reset' | 'silent';
  /** Stall these standbys' replication this long before the kill. */
  stall?: { standbys: 's1' | 's2' | 'both'; ms: number };
  /** Which standby becomes the primary. */
  promote: 'most-advanced' | 'least-advanced';
  /** Where the checker and the log live (outside the cluster). */
  logUrl: string;
}

export interface WorkerSummary {
  name: string;
  role: string;
  settled: boolean;
  calls: number;
  longestMs: number;
  longestOp: string;
  overBound: string[];
  stillPending: { op: string; ageMs: number }[];
  acquired: number;
  writes: number;
  refused: number;
  releasedFalse: number;
  lost: number;
  kept: number;
  lostLeases?: string[];
  errors: Record<string, number>;
}

export interface ScenarioFigures {
  fence: FenceFigures;
  leases: CheckerFigures;
  advisory: CheckerFigures;
  /** The longest time two advisory holders of one key both believed they held it. */
  advisoryOverlapMs: number;
  workers: WorkerSummary[];
  /** The 30 auto-renewed leases still held, current and released cleanly at the end. */
  holderKept: number;
  longestCallMs: number;
  callsOverBound: string[];
  killToPromotedMs: number;
  promoted: string;
  standbyLsns: Record<string, string>;
}

const SCHEMA = 'pgfence';
const HOLDER_KEYS = Array.from({ length: 30 }, (_, i) => `held:${i}`);
const LEASE_KEYS = Array.from({ length: 8 }, (_, i) => `lease:${i}`);
const ADVISORY_KEYS = Array.from({ length: 12 }, (_, i) => `lock:${i}`);
/**
 * A call may take its own wait plus this: the workers' connectTimeoutMs (3 s) and
 * statementTimeoutMs (5 s), and 2 s for a loaded machine.
 */
export const BOUND_SLACK_MS = 10_000;
const LOAD_BEFORE_MS = 3_000;
/** Long enough after the promotion for a call stuck since the kill to pass its bound. */
const LOAD_AFTER_MS = 10_000;

type Worker = ReturnType<typeof startScript>;

async function readyOf(worker: Worker, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let out = '';
  worker.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  while (!out.includes('"ready"')) {
    if (worker.exitCode !== null || performance.now() > deadline) {
      const done: Finished = await Promise.race([
        worker.finished,
        sleep(1_000).then(() => ({ code: null, signal: null, stdout: out, stderr: '' })),
      ]);
      throw new Error(`a worker did not get ready: ${done.stderr || done.stdout}`);
    }
    await sleep(50);
  }
}

async function summaryOf(worker: Worker): Promise<WorkerSummary> {
  const done = await Promise.race([worker.finished, sleep(30_000).then(() => null)]);
  if (!done) {
    worker.kill('SIGKILL');
    throw new Error('a worker did not exit within 30 s of SIGTERM');
  }
  const line = done.stdout.split('\n').find((l) => l.includes('"summary"'));
  if (!line) throw new Error(`a worker printed no summary: ${done.stderr}`);
  return JSON.parse(line) as WorkerSummary;
}

export async function runScenario(spec: ScenarioSpec): Promise<ScenarioFigures> {
  let cluster: Cluster | undefined;
  const workers: Worker[] = [];
  const schemas: string[] = [];
  try {
    cluster = await startCluster(spec.replication);
    await cluster.waitForStandbys();
    const url = cluster.url();
    const setup = createPgFence({ connectionString: url, schema: SCHEMA });
    await setup.migrate();
    await setup.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE TABLE public.fenced_writes (
      id bigserial PRIMARY KEY, key text NOT NULL, token bigint NOT NULL, holder text NOT NULL)`);
    await admin.end();

    const logSchema = await createFenceLog(spec.logUrl);
    schemas.push(logSchema);
    const leaseChecker = await createChecker(spec.logUrl);
    schemas.push(leaseChecker);
    const advisoryChecker = await createChecker(spec.logUrl);
    schemas.push(advisoryChecker);
    const base = {
      url,
      schema: SCHEMA,
      logUrl: spec.logUrl,
      logSchema,
      boundSlackMs: BOUND_SLACK_MS,
      settleMs: 3_000,
    };
    const configs = [
      { ...base, role: 'holder', name: 'holder', keys: HOLDER_KEYS, callers: 1, ttlMs: 10_000 },
      ...['w1', 'w2'].map((name) => ({
        ...base,
        role: 'writer',
        name,
        keys: LEASE_KEYS,
        callers: 4,
        ttlMs: 8_000,
        checkerSchema: leaseChecker,
      })),
      // a2 holds its locks for seconds: a holder on a dead host must still be believing it
      // holds them when the new primary starts granting. a3 makes its first call only after
      // the promotion, on the new primary, as a process started then would.
      ...(
        [
          ['a1', 40, false],
          ['a2', 5_000, false],
          ['a3', 40, true],
        ] as const
      ).map(([name, holdMs, waitForGo]) => ({
        ...base,
        role: 'advisory',
        name,
        holdMs,
        waitForGo,
        keys: ADVISORY_KEYS,
        callers: 3,
        ttlMs: 8_000,
        checkerSchema: advisoryChecker,
      })),
    ].map((c) => ({
      checkerSchema: leaseChecker,
      waitMs: 2_000,
      holdMs: 40,
      waitForGo: false,
      ...c,
    }));
    for (const c of configs) {
      workers.push(startScript(processScript('failover-worker.ts'), [JSON.stringify(c)]));
    }
    await Promise.all(workers.map((w) => readyOf(w, 60_000)));
    await sleep(LOAD_BEFORE_MS);

    const [s1, s2] = cluster.standbys;
    const [r1, r2] = cluster.replicationProxies;
    if (spec.stall) {
      if (spec.stall.standbys !== 's2') r1.stall();
      if (spec.stall.standbys !== 's1') r2.stall();
      await sleep(spec.stall.ms);
    }
    const marks = await FenceLogClient.connect(spec.logUrl, logSchema);
    if (spec.sockets === 'silent') cluster.proxy.silence();
    const killedAt = performance.now();
    const { gone } = await cluster.primary.killAll();
    await marks.record('marker', 'kill', 'test');
    await gone;
    // What the standbys received is all they will get; a stalled stream stays lost.
    r1.cut();
    r2.cut();
    const chosen = await pickStandby([s1, s2], spec.promote === 'most-advanced' ? 'most' : 'least');
    await chosen.node.promote();
    cluster.proxy.retarget(chosen.node.port);
    const killToPromotedMs = Math.round(performance.now() - killedAt);
    await marks.record('marker', 'promoted', 'test', undefined, chosen.node.name);
    for (const [i, c] of configs.entries()) if (c.waitForGo) workers[i]!.kill('SIGUSR1');
    await marks.close();
    await sleep(LOAD_AFTER_MS);

    for (const w of workers) w.kill('SIGTERM');
    const summaries = await Promise.all(workers.map(summaryOf));
    const rows = await chosen.node.query<{ row: string }>(
      `SELECT key || '|' || token || '|' || holder AS row FROM public.fenced_writes`,
    );
    const surviving = new Set(rows.map((r) => r.row));
    const fence = analyseFenceLog(await readFenceLog(spec.logUrl, logSchema), surviving);
    const longest = summaries.reduce((a, b) => (b.longestMs > a.longestMs ? b : a));
    return {
      fence,
      leases: await analyseChecker(spec.logUrl, leaseChecker),
      advisory: await analyseChecker(spec.logUrl, advisoryChecker),
      advisoryOverlapMs: await longestOverlapMs(spec.logUrl, advisoryChecker),
      workers: summaries,
      holderKept: summaries.find((s) => s.role === 'holder')?.kept ?? 0,
      longestCallMs: longest.longestMs,
      callsOverBound: summaries.flatMap((s) => s.overBound.map((o) => `${s.name}: ${o}`)),
      killToPromotedMs,
      promoted: chosen.node.name,
      standbyLsns: chosen.lsns,
    };
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    await Promise.allSettled(workers.map((w) => w.finished));
    await cluster?.destroy();
    for (const s of schemas) await dropSchema(spec.logUrl, s).catch(() => {});
  }
}

/** The figures a scenario prints, for the README and the report. */
export function describeFigures(title: string, f: ScenarioFigures): string {
  return JSON.stringify(
    {
      scenario: title,
      promoted: f.promoted,
      standbyLsns: f.standbyLsns,
      tokens: {
        maxBefore: f.fence.maxTokenBefore,
        minAfter: f.fence.minTokenAfter,
        maxAfter: f.fence.maxTokenAfter,
        acquisitionsBefore: f.fence.acquisitionsBefore,
        acquisitionsAfter: f.fence.acquisitionsAfter,
        issuedTwice: f.fence.tokensIssuedTwice,
        keyTokenPairsTwice: f.fence.keyTokenPairsTwice,
        notLargerAfter: f.fence.tokensNotLargerAfter,
      },
      fencedWrites: {
        accepted: f.fence.fencedWrites,
        outOfOrder: f.fence.writesOutOfOrder,
        termsWithTwoWriters: f.fence.termsWithTwoWriters,
        keysWithTwoWritersAfter: f.fence.keysWithTwoWritersAfter,
      },
      leasesKept: `${f.holderKept}/30`,
      latestLossNoticedMs: f.fence.latestLossNoticedMs,
      acknowledgedWritesMissing: f.fence.writesMissingAfter,
      leasesLostAtRelease: f.fence.leasesLostAtRelease,
      leaseOverlaps: `${f.leases.overlaps} in ${f.leases.acquisitions}`,
      advisoryDoubleGrants: `${f.advisory.overlaps} in ${f.advisory.acquisitions}`,
      advisoryLongestOverlapMs: f.advisoryOverlapMs,
      longestCallMs: f.longestCallMs,
      callsOverBound: f.callsOverBound.length,
      killToPromotedMs: f.killToPromotedMs,
      killToFirstSuccessMs: f.fence.resumeMs,
      workers: f.workers.map((w) => ({
        name: w.name,
        calls: w.calls,
        acquired: w.acquired,
        writes: w.writes,
        refused: w.refused,
        lost: w.lost,
        longest: `${w.longestOp} ${w.longestMs} ms`,
        pending: w.stillPending,
        lostLeases: w.lostLeases,
        errors: w.errors,
      })),
    },
    null,
    2,
  );
}
