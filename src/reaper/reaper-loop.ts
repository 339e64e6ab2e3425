// The periodic reaper.
//
// Only one process reaps at a time: each pass opens a transaction on one pooled connection and
// takes pg_try_advisory_xact_lock there, keeps that transaction open while its batches run and
// commit on a second pooled connection, and commits it when the pass is done. A process whose
// try-lock fails skips that pass (another one is reaping).
// Why a transaction-scoped lock: behind a transaction-mode pooler (PgBouncer
// pool_mode = transaction) each statement of a client connection may run on another server
// connection, so a session lock and its unlock could land on different backends (passes
// overlapped, and the lock stayed behind on a pooled backend). An open transaction keeps its
// server connection until it ends, and the lock ends with it: a commit, a rollback, or the
// connection's death (a crashed pass takes its lock with it). Why two connections: a pass
// must commit every batch on its own, or it would hold every row it deleted locked, and block
// acquirers, until the pass ended. Why per pass, and not a lock held for ever on a dedicated
// connection: a permanent leader would cost every process with a reaper one idle connection
// for its whole life, plus the machinery to notice a dead session and re-elect.
// Jitter keeps processes started together from trying at the same instant every time.
import type { BoundedClient, Database } from '../db/database.js';
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
      await this.#db.withClient(async (lock) => {
        // The lock's transaction sits idle while the batches run: a server-wide
        // idle_in_transaction_session_timeout must not end it (and the pass's lock) midway.
        await lock.query('BEGIN; SET LOCAL idle_in_transaction_session_timeout = 0');
        try {
          await this.#lead(lock);
        } catch (error) {
          // Ended before the connection goes: a pooler drops a server connection whose client
          // leaves mid-transaction, and with it every session lock on it, whoever took it.
          await lock.query('ROLLBACK').catch(() => {});
          throw error;
        }
      });
    } catch (error) {
      this.#safely(this.#onError, error);
    }
  }

  /** In the lock's open transaction: takes the lock, or skips the pass; commits either way. */
  async #lead(lock: BoundedClient): Promise<void> {
    const { rows } = await lock.query<{ leader: boolean }>(
      'SELECT pg_try_advisory_xact_lock($1::bigint) AS leader',
      [this.#lockId],
    );
    if (rows[0]?.leader !== true) {
      await lock.query('COMMIT');
      return; // another process is reaping right now
    }
    // The lock's connection dying mid-pass frees the lock: the pass stops at its next batch.
    const lost = new AbortController();
    const onLost = (): void => lost.abort();
    lock.raw.on('error', onLost);
    lock.raw.on('end', onLost);
    try {
      const stop = AbortSignal.any([this.#stopping.signal, lost.signal]);
      const started = performance.now();
      const deleted = await this.#db.withClient((batches) =>
        reapOn(batches, this.#db.schema, this.#batchSize, stop),
      );
      // An answer in the lock's transaction shows the lock was held all along: only then is the
      // pass reported, still holding it, so that passes reported by different processes never
      // overlap in time.
      await lock.query('SELECT 1');
      this.#report({ deleted, durationMs: performance.now() - started });
      await lock.query('COMMIT');
    } finally {
      lock.raw.off('error', onLost);
      lock.raw.off('end', onLost);
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
