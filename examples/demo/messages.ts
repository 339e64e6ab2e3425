/** What a demo worker process tells the demo about itself, over the IPC channel. */
export type WorkerMessage =
  | { t: 'ready' }
  | { t: 'acquire'; key: string; token: string }
  | { t: 'work'; key: string; token: string }
  | { t: 'write'; key: string; token: string; ok: boolean }
  | { t: 'release'; key: string; token: string; ok: boolean }
  | { t: 'lock'; key: string }
  | { t: 'unlock'; key: string }
  | { t: 'finished' }
  | { t: 'error'; message: string };

/** The environment variable that carries a demo worker's `WorkerConfig`, as JSON. */
export const WORKER_CONFIG_ENV = 'PGFENCE_DEMO_WORKER';

/** What a demo worker needs to know. */
export interface WorkerConfig {
  url: string;
  schema: string;
  id: number;
  ttlMs: number;
  /** How long one job takes, on average. */
  workMs: number;
  /** Jobs claimed per round. */
  batch: number;
  /** How many of the first unfinished jobs a worker picks its claim from. */
  candidates: number;
  /** Keys of the leases all workers contend for. */
  sharedLeases: string[];
  /** Keys of the advisory locks all workers contend for. */
  advisoryLocks: string[];
}

/** Job keys are zero-padded so they sort the way they read. */
export function jobKey(n: number): string {
  return `job:${String(n).padStart(4, '0')}`;
}
