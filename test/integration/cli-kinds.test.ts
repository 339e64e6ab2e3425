// The CLI for the lease kinds: `run --permits` / `--shared`, `ls` with modes, permits and
// waiters, `leader` (with --json and --watch).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPgFence } from '../../src/index.js';
import { cli, lines, pgfence, until, useCliSchema } from '../support/cli.js';

const { url, schema, dir, db } = useCliSchema();

/**
 * `pgfence run <key> <flags> -- sh -c …` that records its token (or, for an advisory lock, which
 * has none, `held`) and holds until `stop` exists.
 */
function holder(key: string, flags: string[], name: string, stop: string) {
  const file = join(dir, `${name}.token`);
  const child = cli([
    'run',
    key,
    ...flags,
    ...db(),
    '--',
    'sh',
    '-c',
    `echo \${PGFENCE_TOKEN:-held} > ${file}; while [ ! -e ${stop} ]; do sleep 0.05; done`,
  ]);
  return { file, child };
}

describe('pgfence run --permits / --shared, ls', () => {
  it('runs up to N holders of a semaphore; ls shows each holder, the mode and the waiters', async () => {
    const stop = join(dir, 'sem.stop');
    const held = ['a', 'b'].map((n) => holder('sem', ['--permits', '2'], `sem-${n}`, stop));
    for (const h of held) await until(async () => (await lines(h.file)).length > 0, 'a permit');
    // A third waits (it does not run), a fourth with --wait 0 gives up with 75, another count is refused.
    const third = holder('sem', ['--permits', '2'], 'sem-c', stop);
    const full = await pgfence([
      'run',
      'sem',
      '--permits',
      '2',
      '--wait',
      '0',
      ...db(),
      '--',
      'true',
    ]);
    expect(full.code).toBe(75);
    const other = await pgfence(['run', 'sem', '--permits', '3', ...db(), '--', 'true']);
    expect(other.code).toBe(1); // a LockError of its own kind: the command did not do what was asked
    expect(other.stderr).toMatch(/permits/);

    await until(async () => {
      const ls = JSON.parse((await pgfence(['ls', ...db(), '--json'])).stdout) as {
        leases: {
          key: string;
          mode: string;
          permits: number;
          waiters: { owner: string; mode: string }[];
          holders: unknown[];
        }[];
      };
      const sem = ls.leases.find((l) => l.key === 'sem');
      return (
        sem?.mode === 'semaphore' &&
        sem.permits === 2 &&
        sem.holders.length === 2 &&
        sem.waiters.length === 1 &&
        sem.waiters[0]!.mode === 'semaphore'
      );
    }, 'ls to show two holders and a waiter');
    const text = await pgfence(['ls', ...db()]);
    expect(text.stdout).toMatch(/^KEY\s+STATE\s+MODE\s+TOKEN\s+OWNER\s+AGE\s+EXPIRES IN\n/);
    expect(text.stdout.match(/^sem\s+held\s+semaphore 2\/2\s/gm)?.length).toBe(2);
    expect(text.stdout.match(/^sem\s+waiting\s+semaphore\s+-\s/gm)?.length).toBe(1);
    expect(await lines(join(dir, 'sem-c.token'))).toEqual([]);

    await (await import('node:fs/promises')).writeFile(stop, '');
    const done = await Promise.all([...held, third].map((h) => h.child.finished));
    expect(done.map((d) => d.code)).toEqual([0, 0, 0]);
    expect((await lines(join(dir, 'sem-c.token'))).length).toBe(1);
  }, 180_000);

  it.each([
    ['a lease', 'doc', []],
    ['an advisory lock', 'adv-doc', ['--advisory']],
  ])(
    '--shared holders of %s run side by side, and an exclusive one waits for them',
    async (_, key, kind) => {
      const stop = join(dir, `${key}.stop`);
      const held = ['a', 'b'].map((n) => holder(key, [...kind, '--shared'], `${key}-${n}`, stop));
      for (const h of held) await until(async () => (await lines(h.file)).length > 0, 'a reader');
      // An advisory lock has no token: its holders wrote "held".
      expect((await lines(held[0]!.file))[0] === 'held').toBe(kind.length > 0);
      const run = (flags: string[]) =>
        pgfence(['run', key, ...kind, ...flags, ...db(), '--', 'true']);
      expect((await run(['--wait', '0'])).code).toBe(75);
      expect((await run(['--shared', '--permits', '2'])).code).toBe(2);
      await (await import('node:fs/promises')).writeFile(stop, '');
      const done = await Promise.all(held.map((h) => h.child.finished));
      expect(done.map((d) => d.code)).toEqual([0, 0]);
      expect((await run(['--wait', '0'])).code).toBe(0);
    },
    180_000,
  );
});

describe('pgfence leader', () => {
  it('says who leads (exit 1 when nobody does), as text or JSON, and --watch prints each change', async () => {
    const none = await pgfence(['leader', 'sched', ...db()]);
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/nobody leads "sched"/);

    const watch = cli(['leader', 'sched', '--watch', '--json', ...db()]);
    let out = '';
    watch.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.includes('null'), 'the watcher to print that nobody leads');

    const fence = createPgFence({ connectionString: url, schema });
    try {
      const term = await fence.campaign('sched', { value: 'host-a:8080', ttlMs: 10_000 });
      const json = await pgfence(['leader', 'sched', '--json', ...db()]);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        value: 'host-a:8080',
        owner: fence.owner,
        token: term.token.toString(),
      });
      await until(() => out.includes(term.token.toString()), 'the watcher to see the term');
      await term.release();
      await until(() => out.trim().split('\n').length >= 3, 'the watcher to see the resignation');
      const seen = out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { token: string } | null);
      expect(seen.map((l) => l?.token ?? null)).toEqual([null, term.token.toString(), null]);
    } finally {
      watch.kill('SIGINT');
      await fence.close();
    }
    expect((await watch.finished).code).toBe(0);
  }, 180_000);
});
