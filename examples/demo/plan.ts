/** The demo's settings, from its flags. */
export interface DemoPlan {
  workers: number;
  jobs: number;
  /** Roughly how long the workers take; the faults are placed within it. */
  seconds: number;
  ttlMs: number;
  workMs: number;
  batch: number;
  /** When to pause a worker, and for how long (past its leases' TTL). */
  pauseAtMs: number;
  pauseForMs: number;
  /** When to kill another worker. */
  killAtMs: number;
  /** After this the run is given up: workers are killed and the verification reports what is missing. */
  giveUpAtMs: number;
  sharedLeases: string[];
  advisoryLocks: string[];
}

/**
 * Sizes a run so it lasts about `seconds`: each job takes `workMs`, short next to the TTL so
 * that only a paused or killed worker ever loses a lease, and the faults fall early enough
 * that the takeovers happen while there is work left.
 */
export function makePlan(options: {
  workers: number;
  jobs: number;
  seconds: number;
  ttlMs: number;
}): DemoPlan {
  const { workers, jobs, seconds, ttlMs } = options;
  const busy = Math.max(1, workers - 1);
  const workMs = Math.round(
    Math.min(ttlMs / 6, Math.max(20, (seconds * 1000 * 0.7 * busy) / jobs)),
  );
  return {
    workers,
    jobs,
    seconds,
    ttlMs,
    workMs,
    batch: 2,
    pauseAtMs: seconds * 1000 * 0.15,
    pauseForMs: ttlMs * 2 + 500,
    killAtMs: seconds * 1000 * 0.35,
    giveUpAtMs: seconds * 1000 * 4 + 30_000,
    sharedLeases: ['demo:report', 'demo:reindex'],
    advisoryLocks: ['demo:cache', 'demo:ledger'],
  };
}
