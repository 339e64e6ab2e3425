// `pgfence doctor` on a plain server: every guarantee holds once the schema is migrated; an
// unmigrated schema, a role without privileges and an idle_session_timeout below the advisory
// liveness probe each fail with their reason; an unreachable server exits 69.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueSchema } from '../support/database.js';
import { pgfence, useCliSchema } from '../support/cli.js';

const { url, schema, db, admin } = useCliSchema();

interface DoctorJson {
  ok: boolean;
  checks: {
    id: string;
    status: string;
    summary: string;
    details: string[];
    facts: Record<string, unknown>;
  }[];
}
const parse = (stdout: string) => JSON.parse(stdout) as DoctorJson;
const check = (json: DoctorJson, id: string) => json.checks.find((c) => c.id === id)!;

describe('pgfence doctor on a plain server', () => {
  it('passes, and says so in words and in JSON', async () => {
    const text = await pgfence(['doctor', ...db()]);
    expect(text.stderr).toBe('');
    expect(text.stdout).toMatch(/Every pgfence guarantee holds on this setup/);
    expect(text.code).toBe(0);
    const json = await pgfence(['doctor', '--json', ...db()]);
    expect(json.code).toBe(0);
    const report = parse(json.stdout);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.id)).toEqual([
      'server',
      'replication',
      'pooler',
      'clock',
      'schema',
      'timeouts',
    ]);
    expect(check(report, 'pooler').status).toBe('ok');
    expect(check(report, 'schema').facts.pending).toEqual([]);
    expect(Math.abs(check(report, 'clock').facts.offsetMs as number)).toBeLessThan(1_000);
  });

  it('fails on a schema that is not migrated', async () => {
    const result = await pgfence(['doctor', '--url', url, '--schema', uniqueSchema('none')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAIL +schema +schema "none_\w+" does not exist/);
    expect(result.stdout).toMatch(/pgfence migrate/);
  });

  it('fails when idle_session_timeout would end advisory sessions between probes', async () => {
    const u = new URL(url);
    u.searchParams.set('options', '-c idle_session_timeout=1000');
    const result = await pgfence(['doctor', '--json', '--url', u.toString(), '--schema', schema]);
    expect(result.code).toBe(1);
    const timeouts = check(parse(result.stdout), 'timeouts');
    expect(timeouts.status).toBe('fail');
    expect(timeouts.details.join(' ')).toMatch(/idle_session_timeout = 1 s/);
  });

  it('exits 69 when the database is unreachable', async () => {
    const result = await pgfence(['doctor', '--url', 'postgres://nobody@127.0.0.1:1/none']);
    expect(result.code).toBe(69);
    expect(result.stderr).toMatch(/cannot reach the database/);
  });

  describe('as a role without privileges on the schema', () => {
    const role = uniqueSchema('r');
    beforeAll(async () => {
      // A password too: the embedded server asks for one (the system server trusts loopback).
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${role}'`);
    });
    afterAll(async () => {
      await admin.query(`DROP OWNED BY ${role}`).catch(() => {});
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    });

    it('fails and names what is missing', async () => {
      const u = new URL(url);
      u.username = role;
      u.password = role;
      const result = await pgfence(['doctor', '--json', '--url', u.toString(), '--schema', schema]);
      expect(result.code).toBe(1);
      const found = check(parse(result.stdout), 'schema');
      expect(found.status).toBe('fail');
      expect(found.details.join(' ')).toMatch(new RegExp(`no USAGE on schema "${schema}"`));
    });
  });
});
