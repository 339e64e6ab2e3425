// Where the subjects of one comparison run: callers in this process, or callers spread over
// worker processes (each with its own connections and its own PgFence, as separate service
// instances would have). Both answer the same two questions: open these subjects, run one
// round of that one.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { driveRound, fromWire, type RoundResult, type WireRound } from './drive.js';
import { Latencies } from './histogram.js';
import {
  errorMessage,
  openVariant,
  SkipError,
  type Runner,
  type VariantEnv,
  type VariantKind,
} from './variants.js';

/** One column of a comparison: a subject, possibly on a schema of its own. */
export interface Subject {
  id: string;
  kind: VariantKind;
  schema?: string;
}

/** Why a subject did not run: skipped (not available here) or failed (an error). */
export interface Unavailable {
  status: 'skipped' | 'failed';
  reason: string;
}

export interface Arena {
  readonly description: string;
  /** Opens every subject; returns those that could not be opened, by id. */
  open(subjects: Subject[]): Promise<Map<string, Unavailable>>;
  round(id: string, durationMs: number): Promise<RoundResult>;
  close(): Promise<void>;
}

/** Why `error` kept a subject from opening. */
export function describe(error: unknown): Unavailable {
  return error instanceof SkipError
    ? { status: 'skipped', reason: error.message }
    : { status: 'failed', reason: errorMessage(error) };
}

/** Opens subjects in this process. Shared by the local arena and the worker processes. */
export async function openSubjects(
  subjects: Subject[],
  env: VariantEnv,
): Promise<{ runners: Map<string, Runner>; unavailable: Map<string, Unavailable> }> {
  const runners = new Map<string, Runner>();
  const unavailable = new Map<string, Unavailable>();
  for (const s of subjects) {
    try {
      runners.set(s.id, await openVariant(s.kind, { ...env, schema: s.schema ?? env.schema }));
    } catch (error) {
      unavailable.set(s.id, describe(error));
    }
  }
  return { runners, unavailable };
}

/** `callers` concurrent callers in this process. */
export class LocalArena implements Arena {
  readonly description: string;
  #runners = new Map<string, Runner>();

  constructor(
    readonly env: VariantEnv,
    readonly callers: number,
    description?: string,
  ) {
    this.description = description ?? `${callers} caller${callers === 1 ? '' : 's'}, 1 process`;
  }

  async open(subjects: Subject[]): Promise<Map<string, Unavailable>> {
    const { runners, unavailable } = await openSubjects(subjects, this.env);
    this.#runners = runners;
    return unavailable;
  }

  round(id: string, durationMs: number): Promise<RoundResult> {
    const runner = this.#runners.get(id);
    if (!runner) throw new Error(`subject ${id} is not open`);
    return driveRound(runner, this.callers, durationMs);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#runners.values()].map((r) => r.close()));
    this.#runners.clear();
  }
}

type WorkerReply =
  | { type: 'opened'; unavailable: [string, Unavailable][] }
  | { type: 'round'; result: WireRound }
  | { type: 'closed' }
  | { type: 'error'; message: string };

const WORKER = fileURLToPath(new URL('../worker.ts', import.meta.url));

/** `processes` × `callersPerProcess` callers, each process with its own connections. */
export class ProcessArena implements Arena {
  readonly description: string;
  #children: ChildProcess[] = [];

  constructor(
    readonly env: VariantEnv,
    readonly processes: number,
    readonly callersPerProcess: number,
  ) {
    this.description = `${processes * callersPerProcess} callers, ${processes} processes`;
  }

  #ask(child: ChildProcess, message: unknown): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      const onMessage = (reply: WorkerReply) => {
        child.off('exit', onExit);
        if (reply.type === 'error') reject(new Error(reply.message));
        else resolve(reply);
      };
      const onExit = (code: number | null) => {
        child.off('message', onMessage);
        reject(new Error(`bench worker exited with ${code}`));
      };
      child.once('message', onMessage);
      child.once('exit', onExit);
      child.send(message as object);
    });
  }

  async open(subjects: Subject[]): Promise<Map<string, Unavailable>> {
    this.#children = Array.from({ length: this.processes }, () =>
      fork(WORKER, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const replies = await Promise.all(
      this.#children.map((child, i) =>
        this.#ask(child, {
          type: 'open',
          subjects,
          env: { ...this.env, tag: `${this.env.tag}p${i}` },
          callers: this.callersPerProcess,
        }),
      ),
    );
    const unavailable = new Map<string, Unavailable>();
    for (const reply of replies) {
      if (reply.type !== 'opened') continue;
      for (const [id, why] of reply.unavailable) unavailable.set(id, why);
    }
    return unavailable;
  }

  async round(id: string, durationMs: number): Promise<RoundResult> {
    const replies = await Promise.all(
      this.#children.map((child) => this.#ask(child, { type: 'round', id, durationMs })),
    );
    const merged: RoundResult = {
      ops: 0,
      errors: 0,
      firstError: undefined,
      elapsedMs: 0,
      latencies: new Latencies(),
    };
    for (const reply of replies) {
      if (reply.type !== 'round') continue;
      const r = fromWire(reply.result);
      merged.ops += r.ops;
      merged.errors += r.errors;
      merged.firstError ??= r.firstError;
      merged.latencies.add(r.latencies);
      // The round lasts as long as its slowest process, measured in that process (the IPC
      // round trip to start and report would otherwise count as idle time).
      merged.elapsedMs = Math.max(merged.elapsedMs, r.elapsedMs);
    }
    return merged;
  }

  async close(): Promise<void> {
    await Promise.allSettled(
      this.#children.map(async (child) => {
        try {
          await this.#ask(child, { type: 'close' });
        } finally {
          child.kill();
        }
      }),
    );
    this.#children = [];
  }
}
