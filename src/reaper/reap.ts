import { setTimeout as delay } from 'node:timers/promises';
import type { BoundedClient, Database } from '../db/database.js';
import { qualified } from '../db/identifiers.js';
import { InvalidArgumentError } from '../errors.js';
import { validateWholeNumber } from '../options.js';
import type { ReapOptions } from '../types.js';
import { refuseUnknownOptions } from '../util/known-options.js';

export const DEFAULT_REAP_BATCH_SIZE = 1_000;
export const MAX_REAP_BATCH_SIZE = 10_000;
/** A batch that takes longer is cancelled: it holds row locks that acquirers may be waiting on. */
export const REAP_STATEMENT_TIMEOUT_MS = 5_000;

const REAP_OPTIONS = new Set(['batchSize']);

/** Validates `reap`'s options before any SQL runs and returns the batch size. @internal */
export function validateReapOptions(options: ReapOptions | undefined): number {
  if (options === undefined) return DEFAULT_REAP_BATCH_SIZE;
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('reap options must be an object: { batchSize? }');
  }
  refuseUnknownOptions(options, REAP_OPTIONS, 'reap');
  const { batchSize = DEFAULT_REAP_BATCH_SIZE } = options;
  return validateWholeNumber(batchSize, 'batchSize', MAX_REAP_BATCH_SIZE);
}

/**
 * Deletes up to `batchSize` expired leases. The expiry test is in the DELETE itself, not only
 * in the sub-select that picks the rows:
 * - the sub-select locks its picks FOR UPDATE SKIP LOCKED, so the reaper never waits for an
 *   acquirer, renewer or releaser; and a row renewed or re-acquired after this statement's
 *   snapshot is re-checked against its latest version (EvalPlanQual) and dropped;
 * - the DELETE re-tests `expires_at <= clock_timestamp()` on the row it deletes, so no path
 *   (a version the sub-select never saw, a future change to the sub-select) can delete a
 *   live lease.
 * A deletion lost in a crash only leaves expired rows for the next pass, so the commit need not
 * be durable.
 * @internal
 */
function reapBatchSql(schema: string): string {
  const leases = qualified(schema, 'leases');
  const holders = qualified(schema, 'lease_holders');
  const waiters = qualified(schema, 'lease_waiters');
  // The holders of shared and semaphore keys (each its own row, its own expiry) and the places
  // of waiters that stopped asking go the same way, under the same rules, in the same statement.
  return `WITH gone_leases AS (
  DELETE FROM ${leases} AS l
  WHERE l.key = ANY (ARRAY(
          SELECT e.key FROM ${leases} e
          WHERE e.expires_at <= clock_timestamp()
          ORDER BY e.expires_at
          LIMIT $1
          FOR UPDATE SKIP LOCKED))
    AND l.expires_at <= clock_timestamp()
  RETURNING 1
), gone_holders AS (
  DELETE FROM ${holders} AS h
  WHERE (h.key, h.token) IN (
          SELECT e.key, e.token FROM ${holders} e
          WHERE e.expires_at <= clock_timestamp()
          ORDER BY e.expires_at
          LIMIT $1
          FOR UPDATE SKIP LOCKED)
    AND h.expires_at <= clock_timestamp()
  RETURNING 1
), gone_waiters AS (
  DELETE FROM ${waiters} AS w
  WHERE w.id IN (
          SELECT e.id FROM ${waiters} e
          WHERE e.expires_at <= clock_timestamp()
          ORDER BY e.expires_at
          LIMIT $1
          FOR UPDATE SKIP LOCKED)
    AND w.expires_at <= clock_timestamp()
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone_leases)::int AS leases,
       (SELECT count(*) FROM gone_holders)::int AS holders,
       (SELECT count(*) FROM gone_waiters)::int AS waiters`;
}

/**
 * Runs one batch in its own short transaction on `client`, with a statement timeout, and
 * returns how many leases and holders it deleted, and whether any table had a full batch
 * (more may be waiting). @internal
 */
export async function reapBatch(
  client: BoundedClient,
  schema: string,
  batchSize: number,
): Promise<{ deleted: number; full: boolean }> {
  // One round trip: the settings are constants, and both end with the transaction.
  await client.query(
    `BEGIN; SET LOCAL statement_timeout = ${REAP_STATEMENT_TIMEOUT_MS}; SET LOCAL synchronous_commit = off`,
  );
  try {
    const result = await client.query<{ leases: number; holders: number; waiters: number }>(
      reapBatchSql(schema),
      [batchSize],
    );
    await client.query('COMMIT');
    const row = result.rows[0] ?? { leases: 0, holders: 0, waiters: 0 };
    return {
      deleted: row.leases + row.holders,
      full: Math.max(row.leases, row.holders, row.waiters) >= batchSize,
    };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * Deletes expired batches on `client` until a short batch (or `signal` aborts between
 * batches) and returns the total. @internal
 */
export async function reapOn(
  client: BoundedClient,
  schema: string,
  batchSize: number,
  signal?: AbortSignal,
): Promise<number> {
  let total = 0;
  for (;;) {
    const started = performance.now();
    const { deleted, full } = await reapBatch(client, schema, batchSize);
    total += deleted;
    if (!full || signal?.aborted) return total;
    // Rest as long as the batch took before the next one: the reaper then uses at most half
    // of the time (and of the WAL and I/O) it could, and acquirers' latency stays flat while
    // a large backlog is deleted (measured in bench/, scenario 4).
    await delay(Math.min(performance.now() - started, MAX_PAUSE_MS));
  }
}

/** The longest rest between two batches. */
const MAX_PAUSE_MS = 250;

/** One reaper pass: deletes expired leases in batches until a short batch; returns rows deleted. @internal */
export async function reap(db: Database, options?: ReapOptions): Promise<number> {
  const batchSize = validateReapOptions(options);
  return db.withClient((client) => reapOn(client, db.schema, batchSize));
}
