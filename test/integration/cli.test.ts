// `pgfence run` as a fleet-wide flock, run as subprocesses against the test server: commands on
// one key never overlap and later ones get larger tokens, exit codes pass through, and --wait 0
// fails at once while the key is held. cli-lost.test.ts covers a lease lost under a command.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, pgfence, until, useCliSchema } from '../support/cli.js';

const { schema, dir, admin, db } = useCliSchema();

describe('pgfence run', () => {
  it('serialises commands on one key, across processes, and gives each later one a larger token', async () => {
    const log = join(dir, 'serial.log');
    // Each command appends "start <token>", holds the key a while, then appends "end <token>".
    const section = `echo "start $PGFENCE_KEY $PGFENCE_TOKEN" >> ${log}; sleep 0.7; echo "end $PGFENCE_KEY $PGFENCE_TOKEN" >> ${log}`;
    const runs = await Promise.all(
      [1, 2, 3].map(() => pgfence(['run', 'serial', ...db(), '--', 'sh', '-c', section])),
    );
    for (const r of runs) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const entries = (await lines(log)).map((l) => l.split(' '));
    expect(entries).toHaveLength(6);
    // Never two starts in a row: every section ended before the next began.
    const tokens: bigint[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      const [start, end] = [entries[i]!, entries[i + 1]!];
      expect(start[0]).toBe('start');
      expect(end[0]).toBe('end');
      expect(start[1]).toBe('serial');
      expect(end[2]).toBe(start[2]);
      tokens.push(BigInt(start[2]!));
    }
    expect(tokens[1]! > tokens[0]!).toBe(true);
    expect(tokens[2]! > tokens[1]!).toBe(true);
  });

  it('passes the command’s exit code through, and 128+N when it dies of signal N', async () => {
    const exit7 = await pgfence(['run', 'codes', ...db(), '--', 'sh', '-c', 'exit 7']);
    expect(exit7.code).toBe(7);
    const ok = await pgfence([
      'run',
      'codes',
      ...db(),
      '--',
      'sh',
      '-c',
      'test -n "$PGFENCE_TOKEN"',
    ]);
    expect(ok.code).toBe(0);
    const killed = await pgfence(['run', 'codes', ...db(), '--', 'sh', '-c', 'kill -TERM $$']);
    expect(killed.code).toBe(128 + 15);
    const missing = await pgfence(['run', 'codes', ...db(), '--', 'no-such-command-pgfence']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/cannot run "no-such-command-pgfence"/);
    // Every run released its lease: nothing is left on the key.
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".leases`);
    expect(rows[0].n).toBe(0);
  });

  it('exits 75 at once with --wait 0 (and after --wait otherwise) while the key is held elsewhere', async () => {
    const held = join(dir, 'held.flag');
    const stop = join(dir, 'held.stop');
    const holder = cli([
      'run',
      'busy',
      ...db(),
      '--',
      'sh',
      '-c',
      `touch ${held}; while [ ! -e ${stop} ]; do sleep 0.05; done`,
    ]);
    try {
      await until(() => existsSync(held), 'the holder to start');
      const noWait = await pgfence(['run', 'busy', ...db(), '--wait', '0', '--', 'true']);
      expect(noWait.code).toBe(75);
      expect(noWait.stderr.trim()).toBe('pgfence: "busy" is held elsewhere');

      const started = performance.now();
      const shortWait = await pgfence(['run', 'busy', ...db(), '--wait', '600ms', '--', 'true']);
      expect(shortWait.code).toBe(75);
      expect(performance.now() - started).toBeGreaterThanOrEqual(600);

      const advisory = await pgfence([
        'run',
        'busy',
        ...db(),
        '--advisory',
        '--wait',
        '0',
        '--',
        'true',
      ]);
      // An advisory lock is a different lock from the lease of the same name.
      expect(advisory.code).toBe(0);
    } finally {
      await writeFile(stop, '');
    }
    const done = await holder.finished;
    expect(done.code).toBe(0);
    const free = await pgfence(['run', 'busy', ...db(), '--wait', '0', '--', 'true']);
    expect(free.code).toBe(0);
  });

  it('forwards signals to the command, and a signal while waiting ends the wait without running it', async () => {
    const started = join(dir, 'signal.started');
    const termed = join(dir, 'signal.term');
    const runner = cli([
      'run',
      'signals',
      ...db(),
      '--',
      'sh',
      '-c',
      `trap 'echo TERM > ${termed}; exit 5' TERM; touch ${started}; while :; do sleep 0.05; done`,
    ]);
    await until(() => existsSync(started), 'the command to start');

    const ran = join(dir, 'signal.waiter-ran');
    const waiter = cli(['run', 'signals', ...db(), '--', 'touch', ran]);
    // Once the waiter is queued for the key it is in its wait (not starting up); interrupt it.
    await until(
      async () =>
        (await admin.query(`SELECT 1 FROM "${schema}".lease_waiters WHERE key = 'signals'`))
          .rowCount === 1,
      'the waiter to queue for the key',
    );
    waiter.kill('SIGINT');
    const waited = await waiter.finished;
    expect(waited.code).toBe(130);
    expect(existsSync(ran)).toBe(false);
    // The interrupted waiter left the queue: it holds no place the holder's release would address.
    const queued = await admin.query(
      `SELECT 1 FROM "${schema}".lease_waiters WHERE key = 'signals'`,
    );
    expect(queued.rowCount).toBe(0);

    runner.kill('SIGTERM');
    const result = await runner.finished;
    // The command got the signal (its trap ran) and its exit code came back through pgfence.
    expect(await lines(termed)).toEqual(['TERM']);
    expect(result.code).toBe(5);
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM "${schema}".leases WHERE key = 'signals'`,
    );
    expect(rows[0].n).toBe(0);
  });

  it('serialises advisory-lock runs too, with PGFENCE_KEY and no token', async () => {
    const log = join(dir, 'advisory.log');
    const section = `echo "start [$PGFENCE_TOKEN]" >> ${log}; sleep 0.5; echo "end" >> ${log}`;
    const runs = await Promise.all(
      [1, 2].map(() => pgfence(['run', 'adv', '--advisory', ...db(), '--', 'sh', '-c', section])),
    );
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
    expect(await lines(log)).toEqual(['start []', 'end', 'start []', 'end']);
  });
});
