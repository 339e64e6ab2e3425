// Renew and release act on one term: (key, token, owner). A holder whose row was replaced by
// another holder's — even one carrying the same token — renews and releases nothing, and learns it.
import { describe, expect, it } from 'vitest';
import { LockLostError } from '../../src/index.js';
import { useMigratedFence } from '../support/database.js';

describe('terms matched by owner', () => {
  const t = useMigratedFence();
  const s = (): string => `"${t.schema}"`;

  async function acquire(key: string, owner: string): Promise<string> {
    const { rows } = await t.pool.query<{ token: string }>(
      `SELECT token::text AS token FROM ${s()}.acquire_leases(ARRAY[$1], $2, ARRAY[60000::float8], NULL)`,
      [key, owner],
    );
    return rows[0]!.token;
  }
  const renew = async (key: string, token: string, owner: string, skip: boolean) =>
    (
      await t.pool.query(
        `SELECT key, busy FROM ${s()}.renew_leases(ARRAY[$1], ARRAY[$2::bigint], $3, ARRAY[60000::float8], $4)`,
        [key, token, owner, skip],
      )
    ).rows;
  const release = async (key: string, token: string, owner: string, skip: boolean) =>
    (
      await t.pool.query(
        `SELECT key, busy FROM ${s()}.release_leases(ARRAY[$1], ARRAY[$2::bigint], $3, $4)`,
        [key, token, owner, skip],
      )
    ).rows;

  it('renews and releases only with the holder’s owner, waiting or not', async () => {
    const token = await acquire('a', 'holder');
    for (const skip of [false, true]) {
      expect(await renew('a', token, 'someone-else', skip)).toEqual([]);
      expect(await release('a', token, 'someone-else', skip)).toEqual([]);
      expect(await renew('a', token, 'holder', skip)).toEqual([{ key: 'a', busy: false }]);
    }
    expect(await release('a', token, 'holder', true)).toEqual([{ key: 'a', busy: false }]);
    expect(await release('a', token, 'holder', false)).toEqual([]);
  });

  it('reports a term someone else has locked as busy, only to its owner', async () => {
    const token = await acquire('b', 'holder');
    const other = await t.pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT ${s()}.is_current('b', $1)`, [token]);
      expect(await renew('b', token, 'holder', true)).toEqual([{ key: 'b', busy: true }]);
      expect(await renew('b', token, 'intruder', true)).toEqual([]);
      expect(await release('b', token, 'holder', true)).toEqual([{ key: 'b', busy: true }]);
      expect(await release('b', token, 'intruder', true)).toEqual([]);
    } finally {
      await other.query('ROLLBACK');
      other.release();
    }
  });

  it('tells a holder whose row another holder took with the same token that it lost the lease', async () => {
    const lease = await t.fence.lease('c', { ttlMs: 60_000 });
    // What a reissued token did before tokens carried the timeline: same key, same token, new owner.
    await t.pool.query(`UPDATE ${s()}.leases SET owner = 'second-holder' WHERE key = 'c'`);
    await expect(lease.extend()).rejects.toBeInstanceOf(LockLostError);
    expect(lease.signal.aborted).toBe(true);
    expect(await lease.release()).toBe(false);
    const { rows } = await t.pool.query(`SELECT owner FROM ${s()}.leases WHERE key = 'c'`);
    expect(rows).toEqual([{ owner: 'second-holder' }]);
  });

  it('keeps the owner-less version 1 signatures working for older processes mid-upgrade', async () => {
    const token = await acquire('d', 'old-process');
    const renewed = await t.pool.query(
      `SELECT key FROM ${s()}.renew_leases(ARRAY['d'], ARRAY[$1::bigint], ARRAY[60000::float8], true)`,
      [token],
    );
    expect(renewed.rows).toEqual([{ key: 'd' }]);
    const released = await t.pool.query(
      `SELECT key FROM ${s()}.release_leases(ARRAY['d'], ARRAY[$1::bigint], true)`,
      [token],
    );
    expect(released.rows).toEqual([{ key: 'd' }]);
  });

  it('refuses a missing owner or arrays of different lengths', async () => {
    await expect(
      t.pool.query(
        `SELECT * FROM ${s()}.renew_leases(ARRAY['x'], ARRAY[1::bigint], NULL, ARRAY[1::float8])`,
      ),
    ).rejects.toMatchObject({ code: '22023' });
    await expect(
      t.pool.query(`SELECT * FROM ${s()}.release_leases(ARRAY['x','y'], ARRAY[1::bigint], 'o')`),
    ).rejects.toMatchObject({ code: '22023' });
  });
});
