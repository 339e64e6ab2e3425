// `pgfence run` losing its lease while the command runs, as subprocesses against the test
// server: force-released by `pgfence release --force`, or run out because the database stopped
// answering the renewals. Either way the command gets SIGTERM (SIGKILL after --grace) and
// `pgfence run` exits 76; a live lease is not force-released without --force.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { cli, lines, pgfence, until, useCliSchema } from '../support/cli.js';

const { url, schema, dir, db } = useCliSchema();

describe('pgfence run, when the lease is lost', () => {
  it('stops the command and exits 76 when the lease is force-released under it', async () => {
    const started = join(dir, 'lost.started');
    const termed = join(dir, 'lost.term');
    const runner = cli([
      'run',
      'lost',
      ...db(),
      '--ttl',
      '2s',
      '--grace',
      '5s',
      '--',
      'sh',
      '-c',
      `trap 'echo TERM > ${termed}; exit 0' TERM; echo $PGFENCE_TOKEN > ${started}; while :; do sleep 0.05; done`,
    ]);
    await until(async () => (await lines(started)).length > 0, 'the command to start');
    const token = (await lines(started))[0]!;

    // A live lease is not released without --force, and a wrong --token is refused too.
    const refused = await pgfence(['release', 'lost', ...db()]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is live .*--force/);
    const wrongToken = await pgfence([
      'release',
      'lost',
      ...db(),
      '--force',
      '--token',
      `${BigInt(token) + 1n}`,
    ]);
    expect(wrongToken.code).toBe(1);
    expect(runner.exitCode).toBe(null);

    const forced = await pgfence(['release', 'lost', ...db(), '--force', '--token', token]);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`released "lost" \\(token ${token}`));

    const result = await runner.finished;
    expect(result.code).toBe(76);
    expect(result.stderr).toMatch(/lost "lost"/);
    // The command got SIGTERM (its trap ran) rather than SIGKILL.
    expect(await lines(termed)).toEqual(['TERM']);
  });

  it('stops the command and exits 76 when the database stops answering its renewals', async () => {
    const target = new URL(url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const started = join(dir, 'stalled.started');
    const termed = join(dir, 'stalled.term');
    try {
      const runner = cli([
        'run',
        'stalled',
        '--url',
        proxy.urlFor(url),
        '--schema',
        schema,
        '--ttl',
        '2s',
        '--',
        'sh',
        '-c',
        `trap 'echo TERM > ${termed}; exit 0' TERM; touch ${started}; while :; do sleep 0.05; done`,
      ]);
      await until(() => existsSync(started), 'the command to start');
      const stalledAt = performance.now();
      // No reply and no error: the renewals hang, and the lease runs out by its own deadline.
      proxy.stall();
      const result = await runner.finished;
      expect(result.code).toBe(76);
      expect(await lines(termed)).toEqual(['TERM']);
      // Bounded: the deadline (2 s) plus cleanup that gives up on the silent database.
      expect(performance.now() - stalledAt).toBeLessThan(30_000);
      // Meanwhile the lease expired on the server: another holder gets it with a larger token.
      const next = await pgfence([
        'run',
        'stalled',
        ...db(),
        '--wait',
        '10s',
        '--',
        'sh',
        '-c',
        'echo $PGFENCE_TOKEN',
      ]);
      expect(next.code).toBe(0);
      expect(BigInt(next.stdout.trim()) > 0n).toBe(true);
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it('SIGKILLs a command that ignores SIGTERM once the grace period has passed', async () => {
    const started = join(dir, 'stubborn.started');
    const runner = cli([
      'run',
      'stubborn',
      ...db(),
      '--ttl',
      '2s',
      '--grace',
      '500ms',
      '--',
      'sh',
      '-c',
      `trap '' TERM; touch ${started}; while :; do sleep 0.05; done`,
    ]);
    await until(() => existsSync(started), 'the command to start');
    const forced = await pgfence(['release', 'stubborn', ...db(), '--force']);
    expect(forced.code).toBe(0);
    const result = await runner.finished;
    expect(result.code).toBe(76);
  });
});
