// Leader election on leases: one leader at a time, a killed leader replaced within TTL + 1 s
// with a larger token, observers in another process see every change in token order.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/index.js';
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
});
