/** What the demo knows about one worker, from its messages and from what was done to it. */
export interface WorkerState {
  id: number;
  pid: number | undefined;
  status: 'starting' | 'idle' | 'working' | 'paused' | 'killed' | 'finished' | 'failed';
  /** Leases (key → token) and advisory locks (key → null) the worker believes it holds. */
  holds: Map<string, string | null>;
  /** Keys it still believes it holds but that another worker has since taken with a larger token. */
  stale: Set<string>;
  done: number;
  refused: number;
  /** Why it exited, when it died on its own (its exit code or signal and last stderr line). */
  exitReason?: string;
}

/** A notable moment of the run, for the event list, the log lines and --json. */
export interface DemoEvent {
  at: number;
  type: 'phase' | 'pause' | 'resume' | 'kill' | 'takeover' | 'refused' | 'worker-exit' | 'progress';
  worker?: number;
  key?: string;
  token?: string;
  previousToken?: string;
  previousWorker?: number;
  text: string;
}

/** Everything the live view draws. */
export interface DemoState {
  startedAt: number;
  jobs: number;
  jobsDone: number;
  ttlMs: number;
  maxToken: bigint;
  workers: WorkerState[];
  events: DemoEvent[];
}
