// The operator's commands, run as subprocesses against the test server: `ls --json` matches
// what is held, the connection comes from --url, DATABASE_URL or PG*, migrate, reap, release.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueSchema } from '../support/database.js';
import { cli, lines, pgfence, until, useCliSchema } from '../support/cli.js';

const { url, schema, dir, admin, db } = useCliSchema();

describe('pgfence ls', () => {
  it('prints JSON that matches the leases and advisory locks held', async () => {
    const stop = join(dir, 'ls.stop');
    const holders = ['ls:a', 'ls:b'].map((key) => {
      const file = join(dir, `${key.replace(':', '_')}.token`);
      const child = cli([
        'run',
        key,
        ...db(),
        '--',
        'sh',
        '-c',
        `echo $PGFENCE_TOKEN > ${file}; while [ ! -e ${stop} ]; do sleep 0.05; done`,
      ]);
      return { key, file, child };
    });
    const advisoryFile = join(dir, 'ls_c.held');
    const advisory = cli([
      'run',
      'ls:c',
      '--advisory',
      ...db(),
      '--',
      'sh',
      '-c',
      `touch ${advisoryFile}; while [ ! -e ${stop} ]; do sleep 0.05; done`,
    ]);
    try {
      for (const h of holders) {
        await until(async () => (await lines(h.file)).length > 0, `${h.key} to be held`);
      }
      await until(() => existsSync(advisoryFile), 'the advisory lock to be held');

      const listed = await pgfence(['ls', ...db(), '--prefix', 'ls:', '--json']);
      expect(listed.stderr).toBe('');
      expect(listed.code).toBe(0);
      const parsed = JSON.parse(listed.stdout) as {
        leases: { key: string; token: string; owner: string; expiresAt: string }[];
        advisory: { key: string | null; applicationName: string | null; granted: boolean }[];
      };
      const expected = await Promise.all(
        holders.map(async (h) => ({ key: h.key, token: (await lines(h.file))[0] })),
      );
      expect(parsed.leases.map((l) => ({ key: l.key, token: l.token }))).toEqual(expected);
      expect(new Set(parsed.leases.map((l) => l.owner)).size).toBe(2);
      for (const l of parsed.leases) expect(Date.parse(l.expiresAt)).not.toBeNaN();

      // Without a prefix, the advisory lock held by the other process shows up (its key is a hash).
      const all = await pgfence(['ls', ...db(), '--json']);
      const everything = JSON.parse(all.stdout) as typeof parsed;
      expect(everything.leases.map((l) => l.key)).toEqual(expect.arrayContaining(['ls:a', 'ls:b']));
      expect(
        everything.advisory.some(
          (a) => a.granted && (a.applicationName ?? '').startsWith('pgfence-cli'),
        ),
      ).toBe(true);

      const text = await pgfence(['ls', ...db(), '--prefix', 'ls:']);
      expect(text.stdout).toMatch(/^KEY\s+STATE\s+MODE\s+TOKEN\s+OWNER/);
      for (const e of expected)
        expect(text.stdout).toMatch(
          new RegExp(`^${e.key}\\s+held\\s+exclusive\\s+${e.token}\\s`, 'm'),
        );
    } finally {
      await writeFile(stop, '');
    }
    const done = await Promise.all([...holders.map((h) => h.child.finished), advisory.finished]);
    expect(done.map((d) => d.code)).toEqual([0, 0, 0]);
    const after = await pgfence(['ls', ...db(), '--prefix', 'ls:', '--json']);
    expect(JSON.parse(after.stdout).leases).toEqual([]);
  });
});

describe('connection and usage', () => {
  it('takes the connection from --url, else DATABASE_URL, else the PG* variables', async () => {
    const bogus = 'postgres://nobody:wrong@127.0.0.1:1/none';
    const viaEnv = await pgfence(['ls', '--schema', schema, '--json'], { DATABASE_URL: url });
    expect(viaEnv.code).toBe(0);
    // --url wins over DATABASE_URL.
    const viaFlag = await pgfence(['ls', ...db(), '--json'], { DATABASE_URL: bogus });
    expect(viaFlag.code).toBe(0);
    const broken = await pgfence(['ls', '--schema', schema], { DATABASE_URL: bogus });
    expect(broken.code).toBe(69);
    expect(broken.stderr.trim().split('\n')).toHaveLength(1);
    const u = new URL(url);
    const viaPg = await pgfence(['ls', '--schema', schema, '--json'], {
      PGHOST: u.hostname,
      PGPORT: u.port || '5432',
      PGUSER: decodeURIComponent(u.username),
      PGPASSWORD: decodeURIComponent(u.password),
      PGDATABASE: u.pathname.slice(1),
    });
    expect(viaPg.stderr).toBe('');
    expect(viaPg.code).toBe(0);
  });

  it('says a schema is not migrated, with exit code 69', async () => {
    const r = await pgfence(['ls', '--url', url, '--schema', uniqueSchema('none')]);
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(/pgfence migrate/);
  });

  it('migrate is idempotent', async () => {
    const again = await pgfence(['migrate', ...db()]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`schema "${schema}" is up to date\n`);
  });

  it('reap deletes expired leases only', async () => {
    await admin.query(
      `SELECT * FROM "${schema}".acquire_leases(ARRAY['reap:old', 'reap:live'], 'test', ARRAY[1, 600000]::float8[], NULL)`,
    );
    await new Promise((r) => setTimeout(r, 50));
    const r = await pgfence(['reap', ...db()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('deleted 1 expired lease\n');
    const { rows } = await admin.query(
      `SELECT key FROM "${schema}".leases WHERE key LIKE 'reap:%' ORDER BY key`,
    );
    expect(rows.map((row) => row.key)).toEqual(['reap:live']);
    const stale = await pgfence(['release', 'reap:live', ...db(), '--force']);
    expect(stale.code).toBe(0);
    const none = await pgfence(['release', 'reap:live', ...db(), '--force']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('pgfence: no lease on "reap:live"\n');
  });

  it('answers --help and refuses an unknown flag with one line and exit code 2, as a process', async () => {
    const help = await pgfence(['run', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pgfence run/);
    const bad = await pgfence(['ls', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("pgfence: unknown option '--bogus'\n");
  });
});
