import { beforeAll, describe, expect, it } from 'vitest';
import type { PgFence } from '../../src/index.js';
import { useClient, useMigratedFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

// One renewal statement per tick serves every auto-renewed lease of a PgFence. A guarded write
// (`… WHERE <schema>.is_current(key, token)`) holds its lease row FOR SHARE until it commits,
// and a renewal of that row must wait for it; the other leases of the statement must not.

describe('a long guarded write and the shared renewal statement', () => {
  const t = useMigratedFence();
  const guard = useClient();
  let fence: PgFence;

  beforeAll(() => {
    fence = t.another();
  });

  it('keeps renewing the other leases while one lease row is held by a guarded write', async () => {
    const ttlMs = 2_000;
    // Taken in one turn: one acquire statement, one renewal schedule, one renewal statement.
    const [written, other] = await Promise.all([
      fence.lease('written', { ttlMs, autoRenew: true }),
      fence.lease('other', { ttlMs, autoRenew: true }),
    ]);
    await guard.query('BEGIN');
    const { rows } = await guard.query<{ ok: boolean }>(
      `SELECT "${t.schema}".is_current($1, $2) AS ok`,
      ['written', written.token.toString()],
    );
    expect(rows[0]!.ok).toBe(true);
    // Well past both leases' deadlines (~1.8 s after their last renewal was sent).
    await sleep(4_500);
    expect(other.signal.aborted).toBe(false);
    await guard.query('COMMIT');

    // The other lease's row really was kept alive by the database.
    const { rows: live } = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${t.schema}".leases
        WHERE key = 'other' AND token = $1 AND expires_at > clock_timestamp()`,
      [other.token.toString()],
    );
    expect(live[0]!.n).toBe(1);
    expect(await other.release()).toBe(true);
    await written.release();
  });
});
