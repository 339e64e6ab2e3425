import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createPgFence,
  LockTimeoutError,
  UnavailableError,
  type Lease,
  type PgFence,
} from '../../src/index.js';
import type { WorkerConfig, WorkerMessage } from './messages.js';

/**
 * One demo worker process: claims jobs, does them, and records each with a fenced write; in
 * between it contends for the shared leases and advisory locks. It never checks its own lease
 * before writing: a pause can fall between any such check and the write, so the write itself
 * carries the token and the database decides (`is_current` in the UPDATE's WHERE clause).
 */
export class DemoWorker {
  readonly #config: WorkerConfig;
  readonly #fence: PgFence;
  readonly #pool: pg.Pool;
  readonly #s: string;
  #stopping = false;

  constructor(config: WorkerConfig) {
    this.#config = config;
    this.#fence = createPgFence({
      connectionString: config.url,
      schema: config.schema,
      owner: `worker-${config.id}`,
      ttlMs: config.ttlMs,
      // Modest: the demo may run on a shared server (--url) with a hundred connections in all.
      poolSize: 2,
      advisorySessions: 1,
      applicationName: `pgfence-demo-${config.id}`,
    });
    this.#pool = new pg.Pool({
      connectionString: config.url,
      max: 1,
      application_name: `pgfence-demo-${config.id}`,
    });
    this.#pool.on('error', () => {});
    this.#s = `"${config.schema}"`;
  }

  stop(): void {
    this.#stopping = true;
  }

  /** Works until every job is done (or `stop()`), then closes its connections. */
  async run(): Promise<void> {
    try {
      send({ t: 'ready' });
      let round = 0;
      while (!this.#stopping) {
        round += 1;
        const pending = await this.#pendingJobs();
        if (pending === null) break;
        if (pending.length > 0) {
          const leases = await this.#fence.claim({
            keys: pending,
            limit: this.#config.batch,
            ttlMs: this.#config.ttlMs,
          });
          await this.#log(leases, 'acquire', null);
          for (const lease of leases) {
            send({ t: 'acquire', key: lease.key, token: lease.token.toString() });
          }
          for (const lease of leases) await this.#doJob(lease);
        }
        // Every other round, contend for a shared lease or lock; wait a little when idle.
        if (round % 2 === 0 || pending.length === 0) await this.#contend(round);
        if (pending.length === 0) await sleep(50);
      }
      send({ t: 'finished' });
    } finally {
      await this.#fence.close().catch(() => {});
      await this.#pool.end().catch(() => {});
    }
  }

  /**
   * The first few unfinished job keys, or null when every job is done. In key order, so that a
   * job whose holder stopped renewing is taken over as soon as its lease expires; enough of
   * them that the ones other workers hold never crowd out the free ones.
   */
  async #pendingJobs(): Promise<string[] | null> {
    const { rows } = await this.#pool.query<{ key: string | null; left: number }>(
      `SELECT k.key, (SELECT count(*)::int FROM ${this.#s}.demo_jobs WHERE done_count = 0) AS left
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (
         SELECT key FROM ${this.#s}.demo_jobs WHERE done_count = 0 ORDER BY key LIMIT $1
       ) k ON true`,
      [this.#config.candidates],
    );
    if ((rows[0]?.left ?? 0) === 0) return null;
    return rows.flatMap((r) => (r.key === null ? [] : [r.key]));
  }

  async #doJob(lease: Lease): Promise<void> {
    const token = lease.token.toString();
    // The key was free when claimed, but the job may have been finished a moment before by a
    // holder who has since released it: look again now that this worker holds the lease.
    const { rows } = await this.#pool.query<{ done: boolean }>(
      `SELECT done_count > 0 AS done FROM ${this.#s}.demo_jobs WHERE key = $1`,
      [lease.key],
    );
    if (!rows[0]?.done) {
      send({ t: 'work', key: lease.key, token });
      await sleep(this.#config.workMs * (0.5 + Math.random()));
      const ok = await this.#fencedJobWrite(lease.key, token);
      send({ t: 'write', key: lease.key, token, ok });
    }
    await this.#release(lease);
  }

  /** Marks the job done only while this token is the live lease; logs the attempt either way. */
  async #fencedJobWrite(key: string, token: string): Promise<boolean> {
    const { rows } = await this.#pool.query<{ ok: boolean }>(
      `WITH done AS (
         UPDATE ${this.#s}.demo_jobs
         SET done_count = done_count + 1, done_by = $3::int, done_token = $2::bigint,
             done_at = clock_timestamp()
         WHERE key = $1::text AND ${this.#s}.is_current($1::text, $2::bigint)
         RETURNING 1
       )
       INSERT INTO ${this.#s}.demo_events (worker, kind, resource, token, ok)
       SELECT $3::int, 'write', $1::text, $2::bigint, EXISTS (SELECT 1 FROM done)
       RETURNING ok`,
      [key, token, this.#config.id],
    );
    return rows[0]?.ok === true;
  }

  async #contend(round: number): Promise<void> {
    const { sharedLeases, advisoryLocks } = this.#config;
    const useLease = (round + this.#config.id) % 2 === 0 && sharedLeases.length > 0;
    if (useLease) {
      const key = pick(sharedLeases);
      const lease = await this.#fence.tryLease(key, { ttlMs: this.#config.ttlMs });
      if (lease) await this.#leaseSection(lease);
    } else if (advisoryLocks.length > 0) {
      const key = pick(advisoryLocks);
      try {
        await this.#fence.withLock(key, (lock) => this.#lockSection(String(lock.key)), {
          waitMs: 100,
        });
      } catch (error) {
        // Held elsewhere, or on a busy machine no answer within the short wait: either way
        // this round goes without the section (the jobs are what must not be lost).
        if (!(error instanceof LockTimeoutError) && !(error instanceof UnavailableError)) {
          throw error;
        }
      }
    }
  }

  /** A critical section under a shared lease: both ends are fenced writes. */
  async #leaseSection(lease: Lease): Promise<void> {
    const token = lease.token.toString();
    await this.#log([lease], 'acquire', null);
    send({ t: 'acquire', key: lease.key, token });
    const start = await this.#pool.query<{ id: string }>(
      `INSERT INTO ${this.#s}.demo_sections (resource, worker, token)
       SELECT $1::text, $3::int, $2::bigint WHERE ${this.#s}.is_current($1::text, $2::bigint)
       RETURNING id::text`,
      [lease.key, token, this.#config.id],
    );
    send({ t: 'work', key: lease.key, token });
    await sleep(this.#config.workMs * (0.5 + Math.random()));
    const id = start.rows[0]?.id;
    if (id !== undefined) {
      const { rows } = await this.#pool.query<{ ok: boolean }>(
        `WITH ended AS (
           UPDATE ${this.#s}.demo_sections SET ended_at = clock_timestamp()
           WHERE id = $4::bigint AND ${this.#s}.is_current($1::text, $2::bigint) RETURNING 1
         )
         INSERT INTO ${this.#s}.demo_events (worker, kind, resource, token, ok)
         SELECT $3::int, 'write', $1::text, $2::bigint, EXISTS (SELECT 1 FROM ended)
         RETURNING ok`,
        [lease.key, token, this.#config.id, id],
      );
      send({ t: 'write', key: lease.key, token, ok: rows[0]?.ok === true });
    }
    await this.#release(lease);
  }

  /** A critical section under an advisory lock: entry and exit are recorded while it is held. */
  async #lockSection(key: string): Promise<void> {
    send({ t: 'lock', key });
    const { rows } = await this.#pool.query<{ id: string }>(
      `INSERT INTO ${this.#s}.demo_sections (resource, worker) VALUES ($1, $2) RETURNING id::text`,
      [key, this.#config.id],
    );
    await sleep(this.#config.workMs * (0.25 + Math.random() / 2));
    await this.#pool.query(
      `UPDATE ${this.#s}.demo_sections SET ended_at = clock_timestamp() WHERE id = $1`,
      [rows[0]?.id],
    );
    send({ t: 'unlock', key });
  }

  /** Releases the lease, and logs and reports whether the release succeeded. */
  async #release(lease: Lease): Promise<void> {
    const released = await lease.release().catch(() => false);
    await this.#log([lease], 'release', released);
    send({ t: 'release', key: lease.key, token: lease.token.toString(), ok: released });
  }

  async #log(leases: Lease[], kind: string, ok: boolean | null): Promise<void> {
    if (leases.length === 0) return;
    await this.#pool.query(
      `INSERT INTO ${this.#s}.demo_events (worker, kind, resource, token, ok)
       SELECT $1::int, $2::text, u.key, u.token::bigint, $5::boolean FROM unnest($3::text[], $4::text[]) AS u(key, token)`,
      [this.#config.id, kind, leases.map((l) => l.key), leases.map((l) => l.token.toString()), ok],
    );
  }
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

function send(message: WorkerMessage): void {
  // Without an IPC channel (run by hand), the messages go nowhere.
  process.send?.(message);
}

/** Runs one worker process until its jobs are done or it is told to stop (worker-main.ts). */
export async function runDemoWorker(config: WorkerConfig): Promise<void> {
  const worker = new DemoWorker(config);
  process.on('SIGTERM', () => worker.stop());
  process.on('message', (message: unknown) => {
    if ((message as { t?: string } | null)?.t === 'stop') worker.stop();
  });
  // The demo going away (Ctrl-C, a crash) closes the channel: stop rather than work orphaned.
  process.on('disconnect', () => worker.stop());
  try {
    await worker.run();
  } catch (error) {
    send({ t: 'error', message: error instanceof Error ? error.message : String(error) });
    throw error;
  }
}
