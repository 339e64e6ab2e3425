import { beforeAll, describe, expect, it } from 'vitest';
import type { PgFence } from '../../src/index.js';
import { useClient, useMigratedFence } from '../support/database.js';
import { sleep, settledWithin } from '../support/wait.js';

// A guarded write (`… WHERE <schema>.is_current(key, token)`) keeps the lease row FOR SHARE
// until its transaction ends, so no new holder can take that key over before it commits.
// Acquires of one PgFence share a statement: that wait must stay with the key it concerns,
// not hold up the other callers whose requests happened to travel in the same statement.

describe('a guarded write in progress and coalesced acquires', () => {
  const t = useMigratedFence();
  const guard = useClient();
  let holder: PgFence;
  let acquirer: PgFence;

  beforeAll(() => {
    holder = t.another();
    acquirer = t.another({ pollIntervalMs: 100 });
  });

  it('holds up only the key being written, and that key until the write commits', async () => {
    const stale = await holder.lease('guarded', { ttlMs: 800 });
    await guard.query('BEGIN');
    const { rows } = await guard.query<{ ok: boolean }>(
      `SELECT "${t.schema}".is_current($1, $2) AS ok`,
      ['guarded', stale.token.toString()],
    );
    expect(rows[0]!.ok).toBe(true);
    await sleep(1_200); // the lease expires by the database clock; the write is still open

    // Submitted in one turn: they travel in one acquire statement.
    const guarded = acquirer.lease('guarded', { ttlMs: 60_000, waitMs: 60_000 });
    const other = acquirer.tryLease('bystander', { ttlMs: 60_000 });
    guarded.catch(() => {});
    other.catch(() => {});

    // The bystander's key is free: its answer must not wait for the guarded write.
    const tookMs = await settledWithin(other, 4_000);
    expect(tookMs).not.toBeNull();
    const bystander = await other;
    expect(bystander?.key).toBe('bystander');

    // The guarded key is not taken over while the write is open…
    expect(await settledWithin(guarded, 1_000)).toBeNull();
    const { rows: held } = await guard.query<{ token: string }>(
      `SELECT token::text AS token FROM "${t.schema}".leases WHERE key = 'guarded'`,
    );
    expect(held[0]!.token).toBe(stale.token.toString());
    await guard.query('COMMIT');

    // …and is granted once it has committed.
    const lease = await guarded;
    expect(lease.token > stale.token).toBe(true);
    await Promise.all([lease.release(), bystander!.release()]);
  });
});

describe('a guarded write in progress and coalesced releases', () => {
  const t = useMigratedFence();
  const guard = useClient();
  let fence: PgFence;

  beforeAll(() => {
    fence = t.another();
  });

  it('answers the other releases of the statement without waiting for the write', async () => {
    const [written, other] = await Promise.all([
      fence.lease('written', { ttlMs: 60_000 }),
      fence.lease('other', { ttlMs: 60_000 }),
    ]);
    await guard.query('BEGIN');
    await guard.query(`SELECT "${t.schema}".is_current($1, $2)`, [
      'written',
      written.token.toString(),
    ]);

    // Submitted in one turn: they travel in one release statement.
    const releasingWritten = written.release();
    const releasingOther = other.release();
    releasingWritten.catch(() => {});

    expect(await settledWithin(releasingOther, 3_000)).not.toBeNull();
    expect(await releasingOther).toBe(true);
    // The written lease's row stays until the write has committed…
    expect(await settledWithin(releasingWritten, 500)).toBeNull();
    await guard.query('COMMIT');
    // …and is then released all the same.
    expect(await releasingWritten).toBe(true);
    const { rows } = await t.pool.query(`SELECT key FROM "${t.schema}".leases`);
    expect(rows).toEqual([]);
  });
});
