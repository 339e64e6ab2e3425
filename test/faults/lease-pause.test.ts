// A holder paused past its TTL (SIGSTOP) loses its lease to another process, and learns so
// as soon as it runs again (SIGCONT).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { processScript, startScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

async function nextLine(
  child: ReturnType<typeof withLines>,
  timeoutMs: number,
): Promise<Record<string, string>> {
  const until = performance.now() + timeoutMs;
  let seen = 0;
  return new Promise((resolve, reject) => {
    const check = () => {
      const lines = child.stdoutLines();
      if (lines.length > seen) return resolve(JSON.parse(lines[seen]!));
      if (performance.now() > until)
        return reject(new Error(`no output; stderr: ${child.stderrText()}`));
      setTimeout(check, 20);
    };
    seen = child.stdoutLines().length;
    check();
  });
}

describe('a holder paused beyond its TTL', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('is overtaken with a larger token and, resumed, finds its lease lost', async () => {
    const key = 'paused';
    const child = withLines(
      startScript(processScript('lease-holder.ts'), [
        JSON.stringify({ url: testUrl(), schema: t.schema, key, ttlMs: 1_500, autoRenew: true }),
      ]),
    );
    try {
      const acquired = await nextLine(child, 30_000);
      expect(acquired.event).toBe('acquired');
      const oldToken = BigInt(acquired.token!);
      // Renewals keep it alive while it runs.
      await sleep(2_000);
      expect(await t.fence.isCurrent(key, oldToken)).toBe(true);

      const lost = nextLine(child, 60_000);
      process.kill(child.pid!, 'SIGSTOP');
      const other = await t.fence.lease(key, { waitMs: 30_000 });
      expect(other.token > oldToken).toBe(true);
      expect(await t.fence.isCurrent(key, oldToken)).toBe(false);
      process.kill(child.pid!, 'SIGCONT');

      const report = await lost;
      expect(report).toEqual({
        event: 'lost',
        reason: 'LockLostError',
        extend: 'LockLostError',
        released: false,
        current: false,
      });
      // The old holder's release and extend did not touch the new term.
      expect(await t.fence.isCurrent(key, other.token)).toBe(true);
      expect(await other.release()).toBe(true);
      const finished = await child.finished;
      expect(finished.code).toBe(0);
    } finally {
      try {
        process.kill(child.pid!, 'SIGCONT');
      } catch {
        // already gone
      }
      child.kill('SIGKILL');
    }
  });
});

function withLines(child: ReturnType<typeof startScript>) {
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return Object.assign(child, {
    stdoutLines: () => out.split('\n').filter((l) => l.trim() !== ''),
    stderrText: () => err,
  });
}
