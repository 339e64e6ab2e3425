import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FaultScript } from './faults.js';
import { WORKER_CONFIG_ENV, type WorkerConfig, type WorkerMessage } from './messages.js';
import type { DemoPlan } from './plan.js';
import type { DemoEvent, DemoState, WorkerState } from './state.js';
import type { DemoView } from './view.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.ts', import.meta.url));

/** What the worker processes share with the demo: its state, its view, its faults. */
export interface RunContext {
  url: string;
  schema: string;
  plan: DemoPlan;
  state: DemoState;
  children: Map<number, ChildProcess>;
  emit: (event: Omit<DemoEvent, 'at'>) => void;
  view: DemoView;
  faults: FaultScript;
  interrupted: AbortController;
}

/** The last term seen for each key: who acquired it, with which token. */
type LatestTerms = Map<string, { worker: number; token: string }>;

/** Starts the worker processes and resolves when all have exited (or the run is given up). */
export async function runWorkers(ctx: RunContext): Promise<void> {
  const { plan, state, children, emit } = ctx;
  const running = new Set<number>();
  const latest: LatestTerms = new Map();
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));

  for (let id = 1; id <= plan.workers; id += 1) {
    const worker: WorkerState = {
      id,
      pid: undefined,
      status: 'starting',
      holds: new Map(),
      stale: new Set(),
      done: 0,
      refused: 0,
    };
    state.workers.push(worker);
    const config: WorkerConfig = {
      url: ctx.url,
      schema: ctx.schema,
      id,
      ttlMs: plan.ttlMs,
      workMs: plan.workMs,
      batch: plan.batch,
      candidates: plan.batch * plan.workers * 2,
      sharedLeases: plan.sharedLeases,
      advisoryLocks: plan.advisoryLocks,
    };
    // The worker is worker-main.ts beside this file, run the way this process was run (with
    // the same --import loader, tsx's). Its settings (the URL, with its password) go in the
    // environment, which `ps` does not show.
    const child = spawn(process.execPath, [...process.execArgv, WORKER_MAIN], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(config) },
    });
    worker.pid = child.pid;
    children.set(id, child);
    running.add(id);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000);
    });
    child.on('message', (message: WorkerMessage) => {
      onMessage(ctx, latest, worker, message);
    });
    child.on('exit', (code, signal) => {
      children.delete(id);
      running.delete(id);
      if (worker.status !== 'killed' && (code !== 0 || signal !== null)) {
        worker.status = 'failed';
        const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
        worker.exitReason = `${signal ?? `code ${code}`}${last ? `: ${last}` : ''}`;
        emit({
          type: 'worker-exit',
          worker: id,
          text: `exited unexpectedly (${worker.exitReason})`,
        });
      } else if (worker.status !== 'killed') {
        worker.status = 'finished';
        worker.holds.clear();
      }
      if (running.size === 0) allDone();
    });
  }

  const ticker = setInterval(() => {
    ctx.view.tick(state);
  }, 50);
  const giveUp = setTimeout(() => {
    emit({ type: 'phase', text: 'the run took too long: stopping the workers' });
    for (const child of children.values()) child.kill('SIGKILL');
  }, plan.giveUpAtMs);
  const onInterrupt = (): void => allDone();
  ctx.interrupted.signal.addEventListener('abort', onInterrupt);
  try {
    await finished;
  } finally {
    clearInterval(ticker);
    clearTimeout(giveUp);
    ctx.faults.stop();
    ctx.interrupted.signal.removeEventListener('abort', onInterrupt);
    ctx.view.tick(state);
  }
}

function onMessage(ctx: RunContext, latest: LatestTerms, w: WorkerState, m: WorkerMessage): void {
  const { state, emit } = ctx;
  switch (m.t) {
    case 'ready':
      setStatus(w, 'idle');
      break;
    case 'acquire': {
      const token = BigInt(m.token);
      if (token > state.maxToken) state.maxToken = token;
      for (const other of state.workers) {
        const held = other.holds.get(m.key);
        if (other === w || held === undefined || held === null || other.stale.has(m.key)) continue;
        if (BigInt(held) >= token) continue;
        if (ctx.faults.isFaulted(other.id)) {
          other.stale.add(m.key);
          emit({
            type: 'takeover',
            worker: w.id,
            key: m.key,
            token: m.token,
            previousWorker: other.id,
            previousToken: held,
            text: `took over ${m.key} with token ${m.token} (w${other.id} held it with token ${held} and stopped renewing)`,
          });
        } else {
          // A release whose message has not arrived yet.
          other.holds.delete(m.key);
        }
      }
      w.holds.set(m.key, m.token);
      latest.set(m.key, { worker: w.id, token: m.token });
      setStatus(w, 'working');
      break;
    }
    case 'work':
      setStatus(w, 'working');
      break;
    case 'write':
      if (m.ok) {
        if (m.key.startsWith('job:')) {
          w.done += 1;
          state.jobsDone += 1;
          const quarter = Math.ceil(state.jobs / 4);
          if (state.jobsDone % quarter === 0 || state.jobsDone === state.jobs) {
            emit({ type: 'progress', text: `${state.jobsDone}/${state.jobs} jobs done` });
          }
        }
      } else {
        w.refused += 1;
        const last = latest.get(m.key);
        const holder =
          last && last.worker !== w.id && BigInt(last.token) > BigInt(m.token)
            ? `w${last.worker} took it over with token ${last.token}`
            : undefined;
        emit({
          type: 'refused',
          worker: w.id,
          key: m.key,
          token: m.token,
          text: `stale write to ${m.key} with token ${m.token} refused by is_current() (${holder ?? 'its lease had expired'})`,
        });
      }
      break;
    case 'release':
      if (w.holds.get(m.key) === m.token) {
        w.holds.delete(m.key);
        w.stale.delete(m.key);
      }
      break;
    case 'lock':
      w.holds.set(m.key, null);
      break;
    case 'unlock':
      w.holds.delete(m.key);
      break;
    case 'finished':
      setStatus(w, 'finished');
      w.holds.clear();
      break;
    case 'error':
      emit({ type: 'worker-exit', worker: w.id, text: `failed: ${m.message}` });
      break;
  }
  ctx.faults.onMessage(w, m);
}

/** Messages queued before a pause or a kill must not make the worker look alive on screen. */
function setStatus(w: WorkerState, status: WorkerState['status']): void {
  if (w.status !== 'paused' && w.status !== 'killed') w.status = status;
}
