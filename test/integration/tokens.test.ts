// Fencing tokens across failovers and rebuilds, with the server's timeline and system identifier
// replaced by values the test sets (the real promotion is in test/faults/token-promotion.test.ts).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence } from '../../src/index.js';
import { migratedFence, newPool, uniqueSchema, type TestFence } from '../support/database.js';

const EPOCH = 2n ** 44n;

async function acquire(pool: pg.Pool, schema: string, keys: string[]): Promise<bigint[]> {
  const { rows } = await pool.query<{ token: string }>(
    `SELECT token::text AS token FROM "${schema}".acquire_leases($1::text[], 'me', $2::float8[], NULL)
     ORDER BY key`,
    [keys, keys.map(() => 60_000)],
  );
  return rows.map((r) => BigInt(r.token));
}

async function claim(pool: pg.Pool, schema: string, keys: string[]): Promise<bigint[]> {
  const { rows } = await pool.query<{ token: string }>(
    `SELECT token::text AS token FROM "${schema}".claim_leases($1::text[], 'me', 60000, 100)`,
    [keys],
  );
  return rows.map((r) => BigInt(r.token));
}

describe('tokens on one server', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('carry the server timeline in their high bits and grow', async () => {
    const { rows } = await t.pool.query<{ tli: string }>(
      `SELECT "${t.schema}".server_timeline()::text AS tli`,
    );
    const timeline = BigInt(rows[0]!.tli);
    expect(timeline).toBeGreaterThanOrEqual(1n);
    const one = await acquire(t.pool, t.schema, ['a']);
    const many = await acquire(t.pool, t.schema, ['b', 'c', 'd']);
    const claimed = await claim(t.pool, t.schema, ['e', 'f']);
    const all = [...one, ...many, ...claimed];
    for (const token of all) expect(token / EPOCH).toBe(timeline);
    expect(claimed[1]! > claimed[0]! && claimed[0]! > many[2]! && many[0]! > one[0]!).toBe(true);
  });

  it('can be drawn by a role that is not a superuser and owns nothing', async () => {
    const role = uniqueSchema('nosuper');
    await t.pool.query(`CREATE ROLE ${role} NOSUPERUSER NOLOGIN`);
    await t.pool.query(`GRANT USAGE ON SCHEMA "${t.schema}" TO ${role}`);
    // What a run-time role needs: DML on pgfence's tables, no ownership, no sequence grant.
    await t.pool.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${t.schema}" TO ${role}`,
    );
    const pool = newPool({ max: 1, options: `-c role=${role}` });
    try {
      const { rows } = await pool.query<{ who: string; su: string }>(
        `SELECT current_user AS who, current_setting('is_superuser') AS su`,
      );
      expect(rows[0]).toEqual({ who: role, su: 'off' });
      const [token] = await acquire(pool, t.schema, ['by-role']);
      expect(token! > EPOCH).toBe(true);
    } finally {
      await pool.end();
      await t.pool.query(`DROP OWNED BY ${role}`);
      await t.pool.query(`DROP ROLE ${role}`);
    }
  });
});

describe('tokens across simulated failovers and rebuilds', () => {
  let t: TestFence;
  const s = (): string => `"${t.schema}"`;
  const setServer = async (timeline: number, systemId: number): Promise<void> => {
    await t.pool.query(`UPDATE ${s()}.fake_server SET timeline = $1, system_id = $2`, [
      timeline,
      systemId,
    ]);
  };
  const epochState = async (): Promise<{ base: string; timeline: string; system_id: string }> =>
    (
      await t.pool.query(
        `SELECT base::text, timeline::text, system_id::text FROM ${s()}.token_epoch`,
      )
    ).rows[0];
  /** What a standby that missed the last commits has: older counter, older epoch row. */
  const loseCommitsSince = async (snapshot: {
    counter: string;
    base: string;
    timeline: string;
    system_id: string;
  }): Promise<void> => {
    await t.pool.query(`SELECT setval('${s()}.fence_token_counter', $1)`, [snapshot.counter]);
    await t.pool.query(`UPDATE ${s()}.token_epoch SET base = $1, timeline = $2, system_id = $3`, [
      snapshot.base,
      snapshot.timeline,
      snapshot.system_id,
    ]);
    await t.pool.query(`DELETE FROM ${s()}.leases`);
  };
  const snapshot = async () => ({
    counter: (await t.pool.query(`SELECT last_value::text AS v FROM ${s()}.fence_token_counter`))
      .rows[0].v as string,
    ...(await epochState()),
  });

  beforeAll(async () => {
    t = await migratedFence();
    // The private helpers stand in for pg_walfile_name and pg_control_system.
    await t.pool.query(`
      CREATE TABLE ${s()}.fake_server (timeline bigint NOT NULL, system_id bigint NOT NULL);
      INSERT INTO ${s()}.fake_server VALUES (1, 1000);
      CREATE OR REPLACE FUNCTION ${s()}.server_timeline() RETURNS bigint
        LANGUAGE sql VOLATILE AS 'SELECT timeline FROM ${s()}.fake_server';
      CREATE OR REPLACE FUNCTION ${s()}.server_system_id() RETURNS bigint
        LANGUAGE sql VOLATILE AS 'SELECT system_id FROM ${s()}.fake_server';`);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('issues after a lossy promotion only tokens larger than every token before it', async () => {
    await setServer(1, 1000);
    const before = await snapshot();
    const old = await acquire(
      t.pool,
      t.schema,
      Array.from({ length: 50 }, (_, i) => `k${i}`),
    );
    const oldMax = old.reduce((a, b) => (b > a ? b : a));
    // The standby had none of those 50 leases, nor the counter's advance.
    await loseCommitsSince(before);
    await setServer(2, 1000);
    const fresh = [
      ...(await acquire(t.pool, t.schema, ['k0'])),
      ...(await acquire(t.pool, t.schema, ['k1', 'k2'])),
      ...(await claim(t.pool, t.schema, ['k3'])),
    ];
    for (const token of fresh) expect(token > oldMax).toBe(true);
    expect(fresh[0]! / EPOCH).toBe(2n);
    expect(await epochState()).toEqual({ base: '0', timeline: '2', system_id: '1000' });
  });

  it('keeps growing after a rebuild starts the cluster again on timeline 1', async () => {
    await setServer(3, 1000);
    const [onThree] = await acquire(t.pool, t.schema, ['r']);
    // pg_upgrade: a new system identifier, timeline 1, the data (and the counter) carried over.
    await setServer(1, 2000);
    const [afterUpgrade] = await acquire(t.pool, t.schema, ['r2']);
    expect(afterUpgrade! > onThree!).toBe(true);
    expect(afterUpgrade! / EPOCH).toBe(3n + 1n);
  });

  it('keeps growing when the standby of a rebuilt cluster missed the first token after it', async () => {
    await setServer(2, 3000);
    await acquire(t.pool, t.schema, ['x']);
    const before = await snapshot(); // (cluster 3000, timeline 2)
    await setServer(1, 4000); // rebuilt: epoch becomes base + 2 + 1
    const built = await acquire(t.pool, t.schema, ['x1', 'x2']);
    await loseCommitsSince(before); // its standby never saw that
    await setServer(2, 4000); // and is promoted onto timeline 2, the one recorded before
    const [promoted] = await acquire(t.pool, t.schema, ['x1']);
    for (const token of built) expect(promoted! > token).toBe(true);
  });

  it('refuses to draw past the last epoch instead of overflowing', async () => {
    await t.pool.query(`UPDATE ${s()}.token_epoch SET base = 524287 - 5`);
    await setServer(5, 4000);
    const [last] = await acquire(t.pool, t.schema, ['edge']);
    expect(last! / EPOCH).toBe(524287n);
    await setServer(6, 4000);
    await expect(acquire(t.pool, t.schema, ['edge2'])).rejects.toMatchObject({ code: '22003' });
  });
});

describe('upgrading from version 2', () => {
  it('keeps tokens growing per key, and refuses a sequence past the counter range', async () => {
    const schema = uniqueSchema('upg');
    const pool = newPool({ max: 4 });
    const fence = createPgFence({ pool, schema });
    try {
      await fence.migrate({ count: 2 });
      // Old-style tokens: plain sequence values, here close to the counter's limit.
      await pool.query(`SELECT setval('"${schema}".fence_tokens', $1)`, [String(EPOCH - 100n)]);
      const { rows } = await pool.query<{ token: string }>(
        `SELECT token::text AS token FROM "${schema}".acquire_leases(ARRAY['u'], 'me', ARRAY[1::float8], NULL)`,
      );
      const old = BigInt(rows[0]!.token);
      expect(old < EPOCH).toBe(true);
      // Up to version 3 only: later versions add objects (and functions that draw tokens) of
      // their own, and this test is about the token upgrade.
      await fence.migrate({ count: 1 });
      await new Promise((r) => setTimeout(r, 20)); // let the 1 ms lease expire
      const [next] = await acquire(pool, schema, ['u']);
      expect(next! > old).toBe(true);
      const { rows: seqs } = await pool.query(
        `SELECT sequencename FROM pg_sequences WHERE schemaname = $1 ORDER BY 1`,
        [schema],
      );
      // The old sequence is gone: an old function version still running fails, draws nothing.
      expect(seqs.map((r) => r.sequencename)).toEqual([
        'fence_token_counter',
        'pgfence_migrations_id_seq',
      ]);

      // Down and up again: tokens still grow (down restarts the old sequence above them).
      await fence.migrate({ direction: 'down', count: 1 });
      await pool.query(`DELETE FROM "${schema}".leases`);
      const [downToken] = await acquire(pool, schema, ['u']);
      expect(downToken! > next!).toBe(true);
      // …and with the old sequence now past 2^44 the upgrade refuses to run, changing nothing.
      await expect(fence.migrate({ count: 1 })).rejects.toThrow(/cannot be greater than MAXVALUE/);
    } finally {
      await fence.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    }
  });
});
