// pgfence benchmarks: `npm run bench` (full, a few minutes) or `npm run bench -- --quick`.
// Options: --quick, --embedded (own server even if one answers), --only=1,3 (scenario numbers).
// Scenario 7 starts ZooKeeper and etcd on loopback when installed (Debian zookeeper, etcd-server).
// Prints Markdown tables and writes the run as JSON and Markdown to bench/results/.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { REDIS_URL, redisAnswers } from './baselines/redis.js';
import { createContext, prepareSchema, type BenchContext } from './lib/context.js';
import { params } from './lib/params.js';
import { Report } from './lib/report.js';
import { openServer } from './lib/server.js';
import { checkTargets } from './lib/targets.js';
import { errorMessage } from './lib/variants.js';
import { claiming } from './scenarios/claiming.js';
import { contendedBaselines } from './scenarios/contended-baselines.js';
import { contendedProcesses } from './scenarios/contended-processes.js';
import { handoff } from './scenarios/handoff.js';
import { leaseKinds } from './scenarios/lease-kinds.js';
import { reaper } from './scenarios/reaper.js';
import { renewalStatement } from './scenarios/renewal-statement.js';
import { renewals } from './scenarios/renewals.js';
import { scale } from './scenarios/scale.js';
import { uncontended } from './scenarios/uncontended.js';

const SCENARIOS: [string, string, (ctx: BenchContext) => Promise<void>][] = [
  ['1', 'uncontended acquire + release', uncontended],
  ['2', 'contended hand-off', handoff],
  ['3', 'claiming', claiming],
  ['4', 'reaper', reaper],
  ['5', 'scale', scale],
  ['5', 'renewals', renewals],
  ['5', 'renewal statement, analyzed table', renewalStatement],
  ['6', 'contended advisory acquire across processes', contendedProcesses],
  ['7', 'contended acquire vs ZooKeeper and etcd', contendedBaselines],
  ['8', 'lease kinds, 16 callers', leaseKinds],
];

function parseArgs(argv: string[]): {
  quick: boolean;
  embedded: boolean;
  only: Set<string> | undefined;
} {
  let quick = false;
  let embedded = false;
  let only: Set<string> | undefined;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === '--embedded') embedded = true;
    else if (arg.startsWith('--only=')) only = new Set(arg.slice('--only='.length).split(','));
    else throw new Error(`unknown argument ${arg} (expected --quick, --embedded, --only=1,2)`);
  }
  return { quick, embedded, only };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const t0 = performance.now();
  const log = (line: string) =>
    console.error(`[${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  const loadStart = loadavg()[0]?.toFixed(1);
  const server = await openServer(args.embedded);
  log(`PostgreSQL ${server.version} (${server.provider})`);
  const redisUrl = (await redisAnswers()) ? REDIS_URL : undefined;
  log(redisUrl ? `Redis at ${REDIS_URL}` : 'no Redis answered: redlock columns skipped');
  const report = new Report();
  const runId = `bench_${randomBytes(4).toString('hex')}`;
  const { context, schemas } = createContext({
    url: server.url,
    runId,
    params: params(args.quick),
    redisUrl,
    report,
    log,
  });
  const notes: Record<string, string> = {};
  let interrupted = false;
  const cleanup = async () => {
    for (const schema of schemas) {
      await context.admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    }
    await context.admin.end().catch(() => {});
    await server.close();
  };
  process.once('SIGINT', () => {
    interrupted = true;
    log("interrupted: dropping the run's schemas");
    // Exits whatever the cleanup's outcome: an interrupted run has nobody to report it to.
    void cleanup().finally(() => process.exit(130));
  });
  try {
    await prepareSchema(server.url, context.admin, runId);
    for (const [id, name, run] of SCENARIOS) {
      if (args.only && !args.only.has(id)) continue;
      log(`scenario ${id}: ${name}`);
      try {
        await run(context);
      } catch (error) {
        const message = errorMessage(error);
        log(`scenario ${id} failed: ${message}`);
        notes[`scenario-${id}`] = message;
        report.row({
          scenario: `${id}. ${name}`,
          config: '—',
          subject: '—',
          status: 'failed',
          note: `failed: ${message}`,
        });
      }
    }
  } finally {
    if (!interrupted) await cleanup();
  }
  checkTargets(report, notes, context.params.liveRows);
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres: server.version,
    server: server.provider,
    fsyncMs: report.metrics['fsync-ms'] ?? null,
    selectOneP50Ms: report.metrics['select1-p50-ms'] ?? null,
  };
  const mode = args.quick ? 'quick' : 'full';
  const argv = process.argv.slice(2);
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const ms = (v: number | null) => (v === null ? '—' : `${v.toFixed(2)} ms`);
  const markdown = [
    `## pgfence bench (${mode}) — ${started.toISOString()}`,
    '',
    `\`${command}\` — ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, ` +
      `Node ${machine.node}, PostgreSQL ${machine.postgres} (${machine.server}); ` +
      `fsync ≈ ${ms(machine.fsyncMs)} (sync − async commit, p50), SELECT 1 p50 ${ms(machine.selectOneP50Ms)}; ` +
      `load average ${loadStart} at the start, ${loadavg()[0]?.toFixed(1)} at the end; ` +
      `${((performance.now() - t0) / 1000).toFixed(0)} s.`,
    '',
    report.render(),
  ].join('\n');
  console.log(`\n${markdown}`);
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const base = `${dir}${mode}-${started.toISOString().replace(/[:.]/g, '-')}`;
  const file = `${base}.json`;
  await writeFile(
    file,
    `${JSON.stringify({ date: started.toISOString(), mode, command, machine, params: context.params, durationS: (performance.now() - t0) / 1000, ...report.toJSON() }, null, 2)}\n`,
  );
  await writeFile(`${base}.md`, `${markdown}\n`);
  log(`wrote ${file} and .md`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
