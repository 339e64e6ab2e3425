import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { openFence } from '../../src/cli/connection.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { startEmbeddedServer, type EmbeddedServer } from './embedded.js';
import type { DemoPlan } from './plan.js';
import type { DemoEvent, DemoState } from './state.js';
import { createDemoTables } from './tables.js';
import { verifyDemo } from './verify.js';
import { createView } from './view.js';
import { runWorkers } from './worker-pool.js';
import { FaultScript } from './faults.js';

/** The demo's flags, resolved. */
export interface DemoRunOptions {
  url: string | undefined;
  plan: DemoPlan;
  output: 'tty' | 'plain' | 'json';
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs the demo: a database (the embedded one unless --url), a schema of its own, the jobs
 * table, the worker processes and the faults; then checks the outcome by SQL. Resolves with the
 * exit code: 0 only when the verification passed. Everything it started is stopped and removed
 * on every path, Ctrl-C included.
 */
export async function runDemo(options: DemoRunOptions): Promise<number> {
  const { plan } = options;
  const view = createView(options.output);
  const children = new Map<number, ChildProcess>();
  let server: EmbeddedServer | undefined;
  const state: DemoState = {
    startedAt: performance.now(),
    jobs: plan.jobs,
    jobsDone: 0,
    ttlMs: plan.ttlMs,
    maxToken: 0n,
    workers: [],
    events: [],
  };
  const emit = (event: Omit<DemoEvent, 'at'>): void => {
    const full = { ...event, at: performance.now() - state.startedAt };
    state.events.push(full);
    view.event(full);
  };

  // Last resort on any exit: no worker outlives the demo, the terminal is restored (the
  // embedded server removes itself the same way).
  const killAll = (): void => {
    for (const child of children.values()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  };
  const onExit = (): void => {
    killAll();
    view.close();
  };
  process.on('exit', onExit);
  const interrupted = new AbortController();
  // Stopped by a signal, the demo exits as shells report it: 128 + the signal's number.
  let interruptedCode: number = EXIT.INTERRUPTED;
  const onSignal = (signal: NodeJS.Signals): void => {
    interruptedCode = 128 + (constants.signals[signal] ?? 2);
    killAll();
    interrupted.abort();
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);

  try {
    let url = options.url;
    if (url === undefined) {
      emit({ type: 'phase', text: 'starting an embedded PostgreSQL in a temporary directory' });
      server = await startEmbeddedServer();
      url = server.url;
      emit({ type: 'phase', text: `PostgreSQL is up (${server.dir})` });
    }
    if (interrupted.signal.aborted) return interruptedCode;
    const schema = `pgfence_demo_${randomBytes(4).toString('hex')}`;
    const open = openFence({ url, schema }, { poolSize: 3 });
    try {
      await open.fence.migrate();
      await createDemoTables(open.pool, schema, plan.jobs);
      emit({
        type: 'phase',
        text: `schema ${schema} migrated; ${plan.jobs} jobs; ${plan.workers} workers start`,
      });
      if (interrupted.signal.aborted) return interruptedCode;

      const faults = new FaultScript(plan, state, children, emit);
      await runWorkers({
        url,
        schema,
        plan,
        state,
        children,
        emit,
        view,
        faults,
        interrupted,
      });
      if (interrupted.signal.aborted) return interruptedCode;

      const summary = await verifyDemo(open.pool, schema, {
        paused: faults.pausedWorker,
        killed: faults.killedWorker,
      });
      // A worker that died on its own (not the one the demo killed) is a failure too.
      for (const w of state.workers.filter((x) => x.status === 'failed')) {
        summary.failures.push(`worker w${w.id} exited unexpectedly (${w.exitReason ?? '?'})`);
        summary.ok = false;
      }
      view.summary(summary, state);
      return summary.ok ? EXIT.OK : EXIT.FAILED;
    } finally {
      killAll();
      if (options.url !== undefined) {
        await open.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      }
      await open.close();
    }
  } finally {
    killAll();
    await server?.destroy();
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    process.off('exit', onExit);
    view.close();
  }
}
