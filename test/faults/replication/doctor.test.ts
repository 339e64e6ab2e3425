// `pgfence doctor` on real replication and a real PgBouncer: asynchronous replication fails
// and says why; quorum commit passes, also for a role that may not read the standbys' state
// (and says that it could not); a transaction-mode pooler fails and says why, a session-mode
// one passes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence } from '../../../src/index.js';
import { pgfence } from '../../support/cli.js';
import { hasPgBouncer, startPgBouncer, type PgBouncer } from '../../support/pgbouncer.js';
import { startCluster, type Cluster } from '../../support/replication/cluster.js';
import { sleep } from '../../support/wait.js';

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
const check = (stdout: string, id: string) =>
  (JSON.parse(stdout) as DoctorJson).checks.find((c) => c.id === id)!;

describe('pgfence doctor on replication and behind PgBouncer', () => {
  let cluster: Cluster;
  const bouncers: PgBouncer[] = [];
  beforeAll(async () => {
    cluster = await startCluster('async');
    await cluster.waitForStandbys();
    const fence = createPgFence({ connectionString: cluster.primary.url });
    await fence.migrate();
    await fence.close();
    await cluster.primary.query(`CREATE ROLE app LOGIN`);
    await cluster.primary.query(`GRANT USAGE ON SCHEMA pgfence TO app`);
    await cluster.primary.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgfence TO app`,
    );
    await cluster.primary.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgfence TO app`);
  });
  afterAll(async () => {
    await Promise.allSettled(bouncers.map((b) => b.stop()));
    await cluster?.destroy();
  });

  it('fails on asynchronous replication, and says why', async () => {
    const text = await pgfence(['doctor', '--url', cluster.primary.url]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(
      /FAIL +replication +asynchronous replication: 2 standby\(s\) stream/,
    );
    expect(text.stdout).toMatch(/can lose the last commits/);
    expect(text.stdout).toMatch(/ANY 1 \(s1, s2\)/);
    const json = await pgfence(['doctor', '--json', '--url', cluster.primary.url]);
    expect(json.code).toBe(1);
    expect(check(json.stdout, 'replication').facts).toMatchObject({
      method: 'none',
      standbysVisible: 2,
    });
  });

  it('passes with quorum commit, and says the failover tool must promote the most advanced standby', async () => {
    await cluster.primary.query(`ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (s1, s2)'`);
    await cluster.primary.query(`SELECT pg_reload_conf()`);
    for (let i = 0; i < 100; i += 1) {
      const [row] = await cluster.primary.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'quorum'`,
      );
      if (row!.n === 2) break;
      await sleep(100);
    }
    const text = await pgfence(['doctor', '--url', cluster.primary.url]);
    expect(text.stdout).toMatch(/ok +replication +quorum commit: ANY 1 of \(s1, s2\)/);
    expect(text.stdout).toMatch(/must promote the most advanced standby/);
    expect(text.code).toBe(0);
  });

  it('says so when the role cannot read the standbys’ state', async () => {
    const result = await pgfence(['doctor', '--json', '--url', cluster.url('postgres', 'app')]);
    const replication = check(result.stdout, 'replication');
    expect(replication.status).toBe('ok');
    expect(replication.facts.standbyStateReadable).toBe(false);
    expect(replication.details.join(' ')).toMatch(/not their state/);
    expect(result.code).toBe(0);
  });

  it.skipIf(!hasPgBouncer())(
    'fails behind a transaction-mode PgBouncer, and says why',
    async () => {
      const bouncer = await startPgBouncer({
        serverPort: cluster.primary.port,
        mode: 'transaction',
      });
      bouncers.push(bouncer);
      const text = await pgfence(['doctor', '--url', bouncer.url('postgres')]);
      expect(text.stdout).toMatch(/FAIL +pooler +a transaction-mode pooler/);
      expect(text.stdout).toMatch(/session-mode pool/);
      expect(text.code).toBe(1);
    },
  );

  it.skipIf(!hasPgBouncer())('passes behind a session-mode PgBouncer', async () => {
    const bouncer = await startPgBouncer({ serverPort: cluster.primary.port, mode: 'session' });
    bouncers.push(bouncer);
    const text = await pgfence(['doctor', '--url', bouncer.url('postgres')]);
    expect(text.stdout).toMatch(/ok +pooler +sessions are stable/);
    expect(text.code).toBe(0);
  });
});
