// The periodic reaper.
//
// Only one process reaps at a time: each pass takes a session advisory lock with
// pg_try_advisory_lock on the pooled connection it reaps on, and unlocks it before handing the
// connection back. A process whose try-lock fails skips that pass (another one is reaping).
// Why per pass, and not a lock held for ever on a dedicated connection: a permanent leader
// would cost every process with a reaper one idle connection for its whole life, plus the
// machinery to notice a dead session and re-elect; a per-pass lock costs one round trip a pass,
// needs no liveness tracking (a crashed pass's connection dies and takes the lock with it) and
// no connection between passes. Why not pg_try_advisory_xact_lock: that lock would last for
// the pass's whole transaction, and a pass must commit every batch on its own, or it would hold
// every row it deleted locked, and block acquirers, until the pass ended.
// Jitter keeps processes started together from trying at the same instant every time.
import type { Database } from '../db/database.js';
import { InvalidArgumentError } from '../errors.js';
import { advisoryKeyId } from '../keys.js';
import type { ResolvedOptions } from '../options.js';
import type { ReapPass, Reaper, ReaperOptions } from '../types.js';
import { reapOn, validateReapOptions } from './reap.js';
import { refuseUnknownOptions } from '../util/known-options.js';

export const DEFAULT_REAPER_INTERVAL_MS = 60_000;
export const MIN_REAPER_INTERVAL_MS = 10;
export const MAX_REAPER_INTERVAL_MS = 24 * 3600 * 1000;
const KNOWN_OPTIONS = new Set(['intervalMs', 'batchSize', 'onPass', 'onError']);
/** Each wait is the interval times a random factor in [1 − JITTER, 1 + JITTER]. */
const JITTER = 0.25;

/**
 * The 64-bit advisory lock id reapers of one schema share. The namespace has a "-", which no
 * schema name has, so it can never equal the id of a key locked through `fence.lock`.
 * @internal
 */
export function reaperLockId(schema: string): bigint {
  return advisoryKeyId('pgfence-reaper', schema);
}

/** The periodic reaper: a pass every `intervalMs` (jittered) while no other process is reaping. @internal */
export class ReaperLoop implements Reaper {
  readonly #db: Database;
  readonly #intervalMs: number;
  readonly #batchSize: number;
  readonly #onPass: (pass: ReapPass) => void;
  readonly #onError: (error: unknown) => void;
  readonly #onStopped: () => void;
  readonly #lockId: string;
  readonly #stopping = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(
    db: Database,
    options: ResolvedOptions,
    reaperOptions: ReaperOptions | undefined,
    onStopped: () => void,
  ) {
    const given = reaperOptions ?? {};
    if (given === null || typeof given !== 'object') {
      throw new InvalidArgumentError(
        'reaper options must be an object: { intervalMs?, batchSize?, onPass?, onError? }',
      );
    }
    refuseUnknownOptions(given, KNOWN_OPTIONS, 'reaper');
    const { intervalMs = DEFAULT_REAPER_INTERVAL_MS, onPass, onError } = given;
    if (
      typeof intervalMs !== 'number' ||
      !Number.isFinite(intervalMs) ||
      intervalMs < MIN_REAPER_INTERVAL_MS ||
      intervalMs > MAX_REAPER_INTERVAL_MS
    ) {
      throw new InvalidArgumentError(
        `"intervalMs" must be a number of milliseconds from ${MIN_REAPER_INTERVAL_MS} to ${MAX_REAPER_INTERVAL_MS}, got ${String(intervalMs)}`,
      );
    }
    for (const [name, fn] of [
      ['onPass', onPass],
      ['onError', onError],
    ] as const) {
      if (fn !== undefined && typeof fn !== 'function') {
        throw new InvalidArgumentError(`"${name}" must be a function`);
      }
    }
    this.#db = db;
    this.#intervalMs = intervalMs;
    this.#batchSize = validateReapOptions({ batchSize: given.batchSize });
    this.#onPass = onPass ?? (() => {});
    this.#onError = onError ?? options.onError;
    this.#onStopped = onStopped;
    this.#lockId = reaperLockId(db.schema).toString();
    this.#schedule();
  }

  /** Stops the loop; resolves once the pass in flight, if any, has finished its current batch. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping.abort();
      clearTimeout(this.#timer);
      await this.#inFlight;
      this.#onStopped();
    })();
    return this.#stopped;
  }

  #schedule(): void {
    if (this.#stopping.signal.aborted) return;
    const factor = 1 - JITTER + 2 * JITTER * Math.random();
    this.#timer = setTimeout(() => {
      this.#inFlight = this.#pass().finally(() => {
        this.#inFlight = undefined;
        this.#schedule();
      });
    }, this.#intervalMs * factor);
  }

  async #pass(): Promise<void> {
    try {
      // If the pass throws, its connection is destroyed, and the lock goes with it.
      await this.#db.withClient(async (client) => {
        const { rows } = await client.query<{ leader: boolean }>(
          'SELECT pg_try_advisory_lock($1::bigint) AS leader',
          [this.#lockId],
        );
        if (rows[0]?.leader !== true) return; // another process is reaping right now
        const started = performance.now();
        const deleted = await reapOn(
          client,
          this.#db.schema,
          this.#batchSize,
          this.#stopping.signal,
        );
        // Reported while still holding the lock, so that passes reported by different processes
        // never overlap in time.
        this.#report({ deleted, durationMs: performance.now() - started });
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [this.#lockId]);
      });
    } catch (error) {
      this.#safely(this.#onError, error);
    }
  }

  #report(pass: ReapPass): void {
    this.#safely(this.#onPass, pass);
  }

  /** A callback that throws must not stop the reaper nor leak into the pass's error path. */
  #safely<T>(fn: (arg: T) => void, arg: T): void {
    try {
      fn(arg);
    } catch {
      // ignored: the caller's callback failed, the reaper carries on
    }
  }
}
