// Leader election on leases: one leader at a time, a killed leader replaced within TTL + 1 s
// with a larger token, observers in another process see every change in token order.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, LockError, type LeaderInfo } from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { processScript, startScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

interface Event {
  event: string;
  value?: string | null;
  token?: string | null;
  leaderNow?: string | null;
  pid?: number;
}

/** A started script whose stdout lines are parsed as they come. */
function startParsed(config: object) {
  const child = startScript(processScript('candidate.ts'), [JSON.stringify(config)]);
  const events: (Event & { at: number })[] = [];
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) events.push({ ...(JSON.parse(line) as Event), at: performance.now() });
    }
  });
  return { child, events };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('leader election', () => {
  const t = useMigratedFence();

  /**
   * Runs `test` with a BEFORE INSERT trigger `name` on the election log: its PL/pgSQL `body`
   * runs before `RETURN NEW`. The trigger and its function are dropped afterwards.
   */
  async function withRecordTrigger(
    name: string,
    body: string,
    test: () => Promise<void>,
  ): Promise<void> {
    const q = `"${t.schema}"`;
    await t.pool.query(
      `CREATE FUNCTION ${q}.${name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
       BEGIN
         ${body}
         RETURN NEW;
       END $fn$`,
    );
    await t.pool.query(
      `CREATE TRIGGER ${name} BEFORE INSERT ON ${q}.election_terms
       FOR EACH ROW EXECUTE FUNCTION ${q}.${name}()`,
    );
    try {
      await test();
    } finally {
      await t.pool.query(`DROP TRIGGER ${name} ON ${q}.election_terms`);
      await t.pool.query(`DROP FUNCTION ${q}.${name}()`);
    }
  }

  it('elects one leader at a time; a SIGKILLed leader is replaced within TTL + 1 s with a larger token', async () => {
    const name = unique('scheduler');
    const ttlMs = 2_000;
    const base = { url: testUrl(), schema: t.schema, name, ttlMs };
    const observer = startParsed({ ...base, value: 'observer', observe: true });
    await until('the observer', () => observer.events.find((e) => e.event === 'observing'));
    const candidates = ['a', 'b', 'c'].map((value) => ({
      value,
      ...startParsed({ ...base, value }),
    }));
    try {
      const elected = () =>
        candidates
          .flatMap((c) => c.events.filter((e) => e.event === 'elected'))
          .sort((x, y) => x.at - y.at);
      const first = await until('a first leader', () => elected()[0]);
      await sleep(1_000);
      expect(elected()).toHaveLength(1);
      const leader = await t.fence.leader(name);
      expect(leader).toMatchObject({ value: first.value, token: BigInt(first.token!) });

      const killed = candidates.find((c) => c.value === first.value)!;
      const killedAt = performance.now();
      killed.child.kill('SIGKILL');
      const second = await until('a second leader', () => elected()[1], ttlMs + 10_000);
      const took = second.at - killedAt;
      console.log(`[election] new leader ${took.toFixed(0)} ms after SIGKILL (ttl ${ttlMs} ms)`);
      expect(took).toBeLessThan(ttlMs + 1_000);
      expect(BigInt(second.token!)).toBeGreaterThan(BigInt(first.token!));
      expect(second.value).not.toBe(first.value);
      await sleep(500);
      expect(elected()).toHaveLength(2);
      expect((await t.fence.leader(name))?.token).toBe(BigInt(second.token!));

      // The observer saw both terms, in token order, and leader() agreed when it looked.
      const seen = await until('the observer to see the second term', () => {
        const tokens = observer.events.filter((e) => e.event === 'leader').map((e) => e.token);
        return tokens.includes(second.token!) ? observer.events : undefined;
      });
      const terms = seen.filter((e) => e.event === 'leader' && e.token !== null);
      const tokens = terms.map((e) => BigInt(e.token!));
      expect(tokens).toContain(BigInt(first.token!));
      expect([...tokens].sort((x, y) => (x < y ? -1 : 1))).toEqual(tokens);
      for (const e of terms)
        expect(e.leaderNow == null || BigInt(e.leaderNow) >= BigInt(e.token!)).toBe(true);
    } finally {
      for (const c of candidates) c.child.kill('SIGKILL');
      observer.child.kill('SIGKILL');
    }
  });

  it('release() resigns: the next candidate is elected at once, and observe() yields null in between', async () => {
    const name = unique('resign');
    const other = t.another();
    const seen: (bigint | null)[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const l of other.observe(name, { signal: stop.signal }))
        seen.push(l?.token ?? null);
    })();
    const term = await t.fence.campaign(name, { value: 'one', ttlMs: 10_000 });
    const next = other.campaign(name, { value: 'two', ttlMs: 10_000 });
    await sleep(300);
    const started = performance.now();
    await term.release();
    const second = await next;
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(second.token).toBeGreaterThan(term.token);
    expect(await t.fence.leader(name)).toMatchObject({ value: 'two', owner: other.owner });
    await sleep(300);
    await second.release();
    await sleep(300);
    stop.abort();
    await watching;
    expect(seen.filter((x) => x !== null)).toEqual([term.token, second.token]);
    expect(seen.at(-1)).toBeNull();
    expect(await t.fence.leader(name)).toBeNull();

    const bad = await t.fence.campaign(name, { value: 42 as never }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgumentError);
  });

  it('observe() yields every term in token order, also terms that began and ended between two of its reads', async () => {
    const name = unique('between');
    const other = t.another();
    const stop = new AbortController();
    // An iterator that is not asked for its next value does not read: terms come and go meanwhile.
    const changes = other.observe(name, { signal: stop.signal })[Symbol.asyncIterator]();
    expect((await changes.next()).value).toBeNull();
    const tokens: bigint[] = [];
    for (const value of ['a', 'b', 'c']) {
      const term = await t.fence.campaign(name, { value, ttlMs: 10_000 });
      tokens.push(term.token);
      await term.release();
    }
    const last = await t.fence.campaign(name, { value: 'd', ttlMs: 10_000 });
    tokens.push(last.token);
    const seen: (LeaderInfo | null)[] = [];
    for (let i = 0; i < 4; i++) seen.push((await changes.next()).value as LeaderInfo | null);
    expect(seen.map((l) => l?.token)).toEqual(tokens);
    expect(seen.map((l) => l?.value)).toEqual(['a', 'b', 'c', 'd']);
    expect(seen.every((l) => l?.owner === t.fence.owner)).toBe(true);
    // The current term as it stands: its expiry is the lease's, by the database clock.
    expect(seen[3]?.expiresAt.getTime()).toBe((await t.fence.leader(name))?.expiresAt.getTime());
    await last.release();
    expect((await changes.next()).value).toBeNull();
    stop.abort();
    expect((await changes.next()).done).toBe(true);

    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${t.schema}".election_terms WHERE key = $1`,
      [name],
    );
    expect(rows[0]?.n).toBe(4);
  });

  it('a term that ends before campaign records it is not yielded, and the campaign goes on', async () => {
    const name = unique('unrecorded');
    const q = `"${t.schema}"`;
    // The first time a term of this name is to be recorded, the record is refused, as it is when
    // the term has ended already (an operator's `pgfence release` between the grant and it).
    await t.pool.query(`CREATE TABLE ${q}.test_dropped (n int)`);
    try {
      await withRecordTrigger(
        'test_release_first',
        `IF NEW.key = '${name}' AND NOT EXISTS (SELECT 1 FROM ${q}.test_dropped) THEN
         INSERT INTO ${q}.test_dropped VALUES (1);
         RETURN NULL;
       END IF;`,
        async () => {
          const term = await t.fence.campaign(name, { value: 'x', ttlMs: 10_000 });
          const { rows } = await t.pool.query<{ token: string }>(
            `SELECT token::text AS token FROM ${q}.election_terms WHERE key = $1`,
            [name],
          );
          // One term was granted and dropped; the campaign's term is the second, and the only one logged.
          expect(rows.map((r) => BigInt(r.token))).toEqual([term.token]);
          expect((await t.fence.leader(name))?.token).toBe(term.token);
          await term.release();
        },
      );
    } finally {
      await t.pool.query(`DROP TABLE ${q}.test_dropped`);
    }
  });

  it('a record that fails gives the term up: campaign rejects with a typed error, nobody leads', async () => {
    const name = unique('failed');
    await withRecordTrigger(
      'test_refuse_record',
      `IF NEW.key = '${name}' THEN RAISE EXCEPTION 'no room in the log' USING ERRCODE = '53100'; END IF;`,
      async () => {
        const error = await t.fence.campaign(name, { ttlMs: 10_000 }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockError);
        expect((error as { cause?: { code?: string } }).cause?.code).toBe('53100');
        expect(await t.fence.leader(name)).toBeNull();
      },
    );
  });

  it('a record holds its term: a release of it waits until the term is in the log', async () => {
    const name = unique('held');
    const q = `"${t.schema}"`;
    const term = await t.fence.campaign(name, { ttlMs: 10_000 });
    const recorder = await t.pool.connect();
    const releaser = await t.pool.connect();
    try {
      await recorder.query('BEGIN');
      const { rows } = await recorder.query<{ recorded: boolean }>(
        `SELECT ${q}.record_term($1, $2, 1000) AS recorded`,
        [name, term.token.toString()],
      );
      expect(rows[0]?.recorded).toBe(true);
      // While that record is uncommitted, the term's row cannot go (nor be taken over).
      await releaser.query(`SET lock_timeout = '200ms'`);
      const blocked = await releaser
        .query(`DELETE FROM ${q}.leases WHERE key = $1`, [name])
        .catch((e: { code?: string }) => e);
      expect((blocked as { code?: string }).code).toBe('55P03');
      await recorder.query('COMMIT');
    } finally {
      await recorder.query('ROLLBACK').catch(() => {});
      recorder.release();
      releaser.release();
    }
    expect(await term.release()).toBe(true);
  });

  it('observe() reads a log longer than one read in order, and an aborted signal yields nothing', async () => {
    const name = unique('long');
    const q = `"${t.schema}"`;
    const stop = new AbortController();
    const changes = t.fence.observe(name, { signal: stop.signal })[Symbol.asyncIterator]();
    expect((await changes.next()).value).toBeNull();
    // A live term, then 1,200 logged terms before it (more than one read takes), put into the
    // log by hand after the record (whose pruning would otherwise keep the newest 1,000).
    const live = await t.fence.campaign(name, { value: 'live', ttlMs: 10_000 });
    await t.pool.query(
      `INSERT INTO ${q}.election_terms (key, token, owner, value, began_at, expires_at)
       SELECT $1, g, 'someone', 'v' || g, now(), now() FROM generate_series(1, 1200) AS g`,
      [name],
    );
    const tokens: bigint[] = [];
    for (let i = 0; i < 1201; i++) {
      const value = (await changes.next()).value as LeaderInfo | null;
      tokens.push(value?.token ?? -1n);
    }
    expect(tokens.slice(0, 1200)).toEqual(Array.from({ length: 1200 }, (_, i) => BigInt(i + 1)));
    expect(tokens[1200]).toBe(live.token);
    stop.abort();
    expect((await changes.next()).done).toBe(true);
    await live.release();

    const aborted = AbortSignal.abort();
    const none: unknown[] = [];
    for await (const leader of t.fence.observe(name, { signal: aborted })) none.push(leader);
    expect(none).toEqual([]);
  });
});
