/**
 * Metric, span and attribute names, in OpenTelemetry's semantic-convention style: dotted,
 * lower-case, durations in seconds. The README's metric table lists the same.
 * @internal
 */
export const METRIC = {
  acquireDuration: 'pgfence.lock.acquire.duration',
  leaseHeld: 'pgfence.lease.held',
  leaseHoldDuration: 'pgfence.lease.hold.duration',
  renewals: 'pgfence.lease.renewals',
  renewalDuration: 'pgfence.lease.renewal.duration',
  renewalFailures: 'pgfence.lease.renewal.failures',
  losses: 'pgfence.lock.losses',
  reaperPasses: 'pgfence.reaper.passes',
  reaperDeleted: 'pgfence.reaper.deleted',
  reaperPassDuration: 'pgfence.reaper.pass.duration',
  claimBatches: 'pgfence.claim.batches',
  claimBatchSize: 'pgfence.claim.batch.size',
  advisorySessions: 'pgfence.advisory.sessions',
} as const;

/** @internal */
export const SPAN = {
  acquire: 'pgfence.acquire',
  release: 'pgfence.release',
  renew: 'pgfence.renew',
  claim: 'pgfence.claim',
} as const;

/** @internal */
export const ATTR = {
  kind: 'pgfence.lock.kind',
  outcome: 'pgfence.lock.outcome',
  key: 'pgfence.lock.key',
  token: 'pgfence.lease.token',
  released: 'pgfence.lock.released',
  lossReason: 'pgfence.loss.reason',
  renewalOutcome: 'pgfence.renewal.outcome',
  leaseCount: 'pgfence.lease.count',
  claimSize: 'pgfence.claim.batch.size',
} as const;

/** Which lock a measurement is about. */
export type LockKind = 'lease' | 'advisory';

/**
 * How an acquire ended. `timeout` includes a `tryLease`/`tryLock` that found the key held;
 * `error` is anything else (bad arguments, a closed PgFence, a server error).
 */
export type AcquireOutcome = 'acquired' | 'timeout' | 'unavailable' | 'aborted' | 'error';

/**
 * Why a held lock was lost: `deadline` (no renewal confirmed before the holder's local
 * deadline), `gone` (the database no longer had the term), `session` (an advisory lock's
 * session connection died), `closed` (the PgFence was closed while holding it).
 */
export type LossReason = 'deadline' | 'gone' | 'session' | 'closed';

/** Bucket bounds (seconds) for waits and statements: 0.5 ms to a minute. */
export const SECONDS_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** Bucket bounds (seconds) for how long leases are held: a tenth of a second to a day. */
export const HOLD_BUCKETS = [0.1, 1, 5, 15, 30, 60, 300, 900, 3600, 14_400, 86_400];
/** Bucket bounds for claim batch sizes. */
export const SIZE_BUCKETS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
