import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidKeyError } from '../../src/index.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('fencing tokens downstream', () => {
  let t: TestFence;
  let s: string;

  beforeAll(async () => {
    t = await migratedFence();
    s = `"${t.schema}"`;
    await t.pool.query(
      `CREATE TABLE ${s}.jobs (id int PRIMARY KEY, done int NOT NULL DEFAULT 0, done_by bigint)`,
    );
    await t.pool.query(`INSERT INTO ${s}.jobs (id) SELECT generate_series(1, 10)`);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  /** Both checks: the library's isCurrent and the SQL function a guarded write uses. */
  const current = async (key: string, token: bigint) => {
    const viaSql = (
      await t.pool.query<{ c: boolean }>(`SELECT ${s}.is_current($1, $2) AS c`, [
        key,
        token.toString(),
      ])
    ).rows[0]!.c;
    const viaLibrary = await t.fence.isCurrent(key, token);
    expect(viaSql).toBe(viaLibrary);
    return viaLibrary;
  };

  it('is true for the live token only: not an older or other token, not after release or expiry', async () => {
    const [first] = await t.fence.claim({ keys: ['f'], limit: 1, ttlMs: 60_000 });
    expect(await current('f', first!.token)).toBe(true);
    expect(await current('f', first!.token + 1n)).toBe(false);
    expect(await current('f', first!.token - 1n)).toBe(false);
    expect(await current('other', first!.token)).toBe(false);

    expect(await first!.release()).toBe(true);
    expect(await current('f', first!.token)).toBe(false);

    const [second] = await t.fence.claim({ keys: ['f'], limit: 1, ttlMs: 60_000 });
    expect(second!.token).toBeGreaterThan(first!.token);
    expect(await current('f', first!.token)).toBe(false);
    expect(await current('f', second!.token)).toBe(true);
    await second!.release();

    const [short] = await t.fence.claim({ keys: ['f'], limit: 1, ttlMs: 1_500 });
    expect(await current('f', short!.token)).toBe(true);
    await sleep(1_800);
    // Expired by the database clock while its row is still in the table.
    const { rows } = await t.pool.query(`SELECT 1 FROM ${s}.leases WHERE key = 'f'`);
    expect(rows.length).toBe(1);
    expect(await current('f', short!.token)).toBe(false);

    // A lease taken with fence.lease behaves the same.
    const lease = await t.fence.lease('f', { ttlMs: 60_000 });
    expect(lease.token).toBeGreaterThan(short!.token);
    expect(await current('f', lease.token)).toBe(true);
    expect(await current('f', short!.token)).toBe(false);
    await lease.release();
    expect(await current('f', lease.token)).toBe(false);
  });

  it('lets a guarded UPDATE through for the current holder only', async () => {
    const guarded = (id: number, key: string, token: bigint) =>
      t.pool.query(
        `UPDATE ${s}.jobs SET done = done + 1, done_by = $3
         WHERE id = $1 AND ${s}.is_current($2, $3)`,
        [id, key, token.toString()],
      );
    const [stale] = await t.fence.claim({ keys: ['job:1'], limit: 1, ttlMs: 300 });
    await sleep(500); // the stale holder paused (GC, network) past its TTL…
    const [fresh] = await t.fence.claim({ keys: ['job:1'], limit: 1, ttlMs: 60_000 });
    expect(fresh!.token).toBeGreaterThan(stale!.token);
    expect((await guarded(1, 'job:1', fresh!.token)).rowCount).toBe(1);
    // …and comes back believing it still holds job 1: its write is refused.
    expect((await guarded(1, 'job:1', stale!.token)).rowCount).toBe(0);
    const { rows } = await t.pool.query(`SELECT done, done_by::text FROM ${s}.jobs WHERE id = 1`);
    expect(rows[0]).toEqual({ done: 1, done_by: fresh!.token.toString() });
    await fresh!.release();
  });

  it('lets an HTTP service that keeps the highest token per key refuse a stale holder', async () => {
    // The pattern from the README: the token travels in a header; the service remembers the
    // highest token it has accepted per key and refuses lower ones.
    const highest = new Map<string, bigint>();
    const stored = new Map<string, string>();
    const server: Server = createServer((req, res) => {
      const key = decodeURIComponent(req.url!.slice(1));
      const header = req.headers['fencing-token'];
      if (typeof header !== 'string' || !/^[0-9]+$/.test(header)) {
        res.writeHead(400).end('a Fencing-Token header is required');
        return;
      }
      const token = BigInt(header);
      if (token < (highest.get(key) ?? 0n)) {
        res.writeHead(409).end('stale fencing token');
        return;
      }
      highest.set(key, token);
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        stored.set(key, body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const put = async (key: string, token: bigint, body: string) =>
      (
        await fetch(`http://127.0.0.1:${port}/${encodeURIComponent(key)}`, {
          method: 'PUT',
          headers: { 'Fencing-Token': token.toString() },
          body,
        })
      ).status;
    try {
      const [stale] = await t.fence.claim({ keys: ['report'], limit: 1, ttlMs: 300 });
      expect(await put('report', stale!.token, 'draft by the first holder')).toBe(204);
      await sleep(500);
      const [fresh] = await t.fence.claim({ keys: ['report'], limit: 1, ttlMs: 60_000 });
      expect(await put('report', fresh!.token, 'final')).toBe(204);
      expect(await put('report', stale!.token, 'late overwrite')).toBe(409);
      expect(await put('report', fresh!.token, 'final, again')).toBe(204);
      expect(stored.get('report')).toBe('final, again');
      await fresh!.release();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('issues tokens that only grow per key while claimers and lease acquirers race for few keys', async () => {
    // A trigger checks every token written into a lease row against the last one written for
    // that key: an acquirer that drew its token before it was serialised with the others
    // would sooner or later write a smaller token after a larger one.
    await t.pool.query(`
      CREATE TABLE ${s}.token_log (key text PRIMARY KEY, token bigint NOT NULL);
      CREATE FUNCTION ${s}.check_token() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE prev bigint;
      BEGIN
        SELECT token INTO prev FROM ${s}.token_log WHERE key = NEW.key;
        IF prev IS NOT NULL AND NEW.token <= prev THEN
          RAISE EXCEPTION 'token % for % written after %', NEW.token, NEW.key, prev;
        END IF;
        INSERT INTO ${s}.token_log VALUES (NEW.key, NEW.token)
          ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token;
        RETURN NULL;
      END $$;
      -- AFTER: a BEFORE INSERT trigger would also fire for an upsert that becomes an update.
      CREATE TRIGGER check_token AFTER INSERT OR UPDATE OF token ON ${s}.leases
        FOR EACH ROW EXECUTE FUNCTION ${s}.check_token();`);
    const keys = ['race:a', 'race:b', 'race:c'];
    const fences = [t.fence, t.another(), t.another()];
    const stopAt = performance.now() + 2_500;
    let taken = 0;
    const claimer = async (i: number) => {
      const fence = fences[i % fences.length]!;
      while (performance.now() < stopAt) {
        const leases = await fence.claim({ keys, limit: 2, ttlMs: 5 + (i % 3) * 10 });
        taken += leases.length;
        // Half the claimers release; the others' leases expire.
        if (i % 2 === 0) await Promise.all(leases.map((l) => l.release()));
      }
    };
    const acquirer = async () => {
      while (performance.now() < stopAt) {
        const { rows } = await t.pool.query<{ key: string; token: string }>(
          `SELECT key, token::text FROM ${s}.acquire_leases($1::text[], 'raw', array_fill(5::float8, ARRAY[3]), NULL)
           WHERE acquired`,
          [keys],
        );
        taken += rows.length;
      }
    };
    await Promise.all([...[0, 1, 2, 3, 4, 5].map(claimer), acquirer(), acquirer()]);
    expect(taken).toBeGreaterThan(20);
    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${s}.token_log`,
    );
    expect(rows[0]!.n).toBe(3);
  });

  it('forces a durable commit for claim_leases even when the session turned it off', async () => {
    const client = await t.pool.connect();
    try {
      await client.query('SET synchronous_commit = off');
      await client.query('BEGIN');
      await client.query(`SELECT * FROM ${s}.claim_leases(ARRAY['durable'], 'me', 60000, 1)`);
      const { rows } = await client.query<{ synchronous_commit: string }>(
        'SHOW synchronous_commit',
      );
      expect(rows[0]!.synchronous_commit).toBe('on');
      await client.query('ROLLBACK');
    } finally {
      await client.query('RESET synchronous_commit');
      client.release();
    }
  });

  it('refuses a token that is not a bigint and a bad key', async () => {
    for (const token of [1, '1', null, undefined]) {
      await expect(t.fence.isCurrent('k', token as never)).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    for (const key of ['', 42, 'x'.repeat(257)]) {
      await expect(t.fence.isCurrent(key as never, 1n)).rejects.toBeInstanceOf(InvalidKeyError);
    }
  });
});
