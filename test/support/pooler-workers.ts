// Runs pooler-worker.ts processes side by side and reads what each printed.
import { processScript, startScript } from './spawn.js';
import type { PoolerSetup } from './pooler.js';

export interface WorkerReport {
  name: string;
  counts: { grants: number; refused: number; timeouts: number; lost: number; passes: number };
  errors: string[];
  passes: { start: number; end: number; deleted: number }[];
}

export interface WorkerPlan {
  kind: 'session' | 'lease' | 'xact' | 'reaper';
  processes: number;
  callers?: number;
  keys?: string[];
  durationMs: number;
  holdMs?: number;
  poolSize?: number;
}

export async function runWorkers(setup: PoolerSetup, plan: WorkerPlan): Promise<WorkerReport[]> {
  const children = Array.from({ length: plan.processes }, (_, i) =>
    startScript(processScript('pooler-worker.ts'), [
      JSON.stringify({
        kind: plan.kind,
        url: setup.url,
        direct: setup.direct,
        schema: setup.schema,
        checker: setup.checker,
        keys: plan.keys ?? [],
        callers: plan.callers ?? 1,
        durationMs: plan.durationMs,
        holdMs: plan.holdMs ?? 5,
        name: `p${i + 1}`,
        poolSize: plan.poolSize ?? 3,
      }),
    ]),
  );
  const finished = await Promise.all(children.map((c) => c.finished));
  return finished.map((f, i) => {
    const line = f.stdout.trim().split('\n').pop() ?? '';
    if (f.code !== 0 || !line.startsWith('{')) {
      throw new Error(`worker p${i + 1} failed (exit ${f.code}): ${f.stderr.slice(-2_000)}`);
    }
    return JSON.parse(line) as WorkerReport;
  });
}

/** Errors other than the loud, expected ones: a session that changed backend, and its loss. */
export function unexpectedErrors(reports: WorkerReport[]): string[] {
  return reports.flatMap((r) =>
    r.errors
      .filter((e) => !/^onError: (SessionChangedError|LockLostError)/.test(e))
      .map((e) => `${r.name}: ${e}`),
  );
}

export function total(reports: WorkerReport[], count: keyof WorkerReport['counts']): number {
  return reports.reduce((n, r) => n + r.counts[count], 0);
}

/** Waits up to `ms` for `test` to hold; returns its last value. */
export async function eventually<T>(ms: number, read: () => Promise<T>, ok: (v: T) => boolean) {
  const until = performance.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value) || performance.now() > until) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The advisory locks still held on the server once every client has exited (read directly,
 * not through the pooler), given up to 2 s to reach 0 while backends finish giving theirs back.
 */
export function advisoryLocksLeft(setup: { advisoryLocks(): Promise<number> }): Promise<number> {
  return eventually(
    2_000,
    () => setup.advisoryLocks(),
    (n) => n === 0,
  );
}
