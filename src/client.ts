import { Database } from './db/database.js';
import { ClosedError } from './errors.js';
import { resolveOptions, type PgFenceOptions } from './options.js';
import { runMigrations } from './schema/migrate.js';
import { SessionLockManager } from './advisory/session-lock-manager.js';
import { xactLock } from './advisory/xact-lock.js';
import { LeaseManager } from './lease/lease-manager.js';
import { isCurrent } from './lease/is-current.js';
import { Claimer } from './claim/claimer.js';
import { reap } from './reaper/reap.js';
import { ReaperLoop } from './reaper/reaper-loop.js';
import { inspect } from './inspect.js';
import { Election } from './election/election.js';
import type { PgFence } from './types.js';
import { Telemetry } from './telemetry/telemetry.js';
import { instrument } from './telemetry/instrument.js';

/**
 * Creates a `PgFence`: advisory locks, leases with fencing tokens, claiming and reaping over
 * one PostgreSQL connection pool. This function only wires the parts together; each lives in
 * its own module.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { createPgFence } from 'pgfence';
 *
 * const pool = new pg.Pool({ connectionString: 'postgres://app@db.internal/app' });
 * const fence = createPgFence({ pool, schema: 'pgfence', ttlMs: 30_000 }); // borrows the pool
 * await fence.migrate();
 * ```
 */
export function createPgFence(options: PgFenceOptions): PgFence {
  const resolved = resolveOptions(options);
  const db = new Database(resolved);
  const telemetry = new Telemetry(resolved.telemetry);
  const advisory = new SessionLockManager(db, resolved, telemetry);
  const leases = new LeaseManager(db, resolved, telemetry);
  const claimer = new Claimer(db, leases, resolved);
  const election = new Election(db, leases, resolved.pollIntervalMs);
  const reapers = new Set<ReaperLoop>();
  let closed: Promise<void> | undefined;

  const open = (): void => {
    if (closed) throw new ClosedError();
  };

  const fence: PgFence = {
    schema: resolved.schema,
    owner: resolved.owner,

    migrate: async (migrateOptions) => (open(), runMigrations(db, resolved.schema, migrateOptions)),

    lock: async (key, lockOptions) => (open(), advisory.lock(key, lockOptions)),
    tryLock: async (key, lockOptions) => (open(), advisory.tryLock(key, lockOptions)),
    withLock: async (key, fn, lockOptions) => (open(), advisory.withLock(key, fn, lockOptions)),
    lockAll: async (keys, lockOptions) => (open(), advisory.lockAll(keys, lockOptions)),
    xactLock: async (trx, key, lockOptions) => (open(), xactLock(resolved, trx, key, lockOptions)),

    lease: async (key, leaseOptions) => (open(), leases.lease(key, leaseOptions)),
    tryLease: async (key, leaseOptions) => (open(), leases.tryLease(key, leaseOptions)),
    withLease: async (key, fn, leaseOptions) => (open(), leases.withLease(key, fn, leaseOptions)),
    leaseAll: async (keys, leaseOptions) => (open(), leases.leaseAll(keys, leaseOptions)),

    campaign: async (name, campaignOptions) => (open(), election.campaign(name, campaignOptions)),
    leader: async (name) => (open(), election.leader(name)),
    observe: (name, observeOptions) => (open(), election.observe(name, observeOptions)),

    claim: async (claimOptions) => (open(), claimer.claim(claimOptions)),
    xactRelease: async (trx, claimed) => (open(), claimer.xactRelease(trx, claimed)),
    isCurrent: async (key, token) => (open(), isCurrent(db, key, token)),

    reap: async (reapOptions) => (open(), reap(db, reapOptions)),
    startReaper: (reaperOptions) => {
      open();
      const loop = new ReaperLoop(db, resolved, reaperOptions, () => reapers.delete(loop));
      reapers.add(loop);
      return loop;
    },
    inspect: async (inspectOptions) => (open(), inspect(db, advisory, inspectOptions)),

    close: () => {
      closed ??= (async () => {
        await Promise.allSettled([...reapers].map((r) => r.stop()));
        await Promise.allSettled([leases.close(), advisory.close()]);
        await db.close();
      })();
      return closed;
    },
    [Symbol.asyncDispose]: () => fence.close(),
  };
  return Object.freeze(instrument(fence, telemetry));
}
