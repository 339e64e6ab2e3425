// `npm run test:soak`: one process holds 10,000 auto-renewed leases (TTL 3 s: one renewal
// slower than about a second would lose them) on an analyzed table, for 3 minutes, while
// another process tries to take the same keys and runs a reaper, and this one runs ANALYZE and
// VACUUM every few seconds, as autovacuum would. None may be lost, and the contender must never
// get one. Server: PGFENCE_TEST_URL, else an embedded PostgreSQL of its own.
// PGFENCE_SOAK_SECONDS sets the length (default 180).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createPgFence, type Lease } from '../../src/index.js';
import { startEmbeddedServer, type OwnServer } from '../support/embedded-server.js';

const LEASES = 10_000;
const TTL_MS = 3_000;
const SECONDS = Number(process.env.PGFENCE_SOAK_SECONDS ?? 180);

const log = (line: string): void =>
  console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);

async function main(): Promise<number> {
  let server: OwnServer | undefined;
  const url = process.env.PGFENCE_TEST_URL ?? (server = await startEmbeddedServer()).url;
  const schema = `soak_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  admin.on('error', () => {});
  const errors: unknown[] = [];
  const fence = createPgFence({ connectionString: url, schema, onError: (e) => errors.push(e) });
  const leases: Lease[] = [];
  const failures: string[] = [];
  try {
    await fence.migrate();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < LEASES) {
          const i = next++;
          const lease = await fence.tryLease(`soak:${i}`, { ttlMs: TTL_MS, autoRenew: true });
          if (!lease) throw new Error(`soak:${i} was not free`);
          leases.push(lease);
        }
      }),
    );
    await admin.query(`ANALYZE "${schema}".leases`);
    log(
      `${LEASES} leases held, table analyzed; ${SECONDS} s with a contender, a reaper, ANALYZE and VACUUM`,
    );

    const contender = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('./contender.ts', import.meta.url)),
        JSON.stringify({ url, schema, keys: LEASES, seconds: SECONDS }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let contenderOut = '';
    contender.stdout.on('data', (d: Buffer) => (contenderOut += d.toString()));
    const contenderDone = new Promise<number | null>((resolve) => contender.on('exit', resolve));

    const until = Date.now() + SECONDS * 1000;
    let maintenance = 0;
    while (Date.now() < until) {
      await admin.query(
        maintenance % 2 === 0 ? `ANALYZE "${schema}".leases` : `VACUUM "${schema}".leases`,
      );
      maintenance += 1;
      const lost = leases.filter((l) => l.signal.aborted).length;
      if (maintenance % 6 === 0) log(`${lost} lost so far, ${maintenance} ANALYZE/VACUUM runs`);
      const first = leases.find((l) => l.signal.aborted);
      if (first && maintenance % 6 === 0) log(`first loss: ${String(first.signal.reason)}`);
      await new Promise((r) => setTimeout(r, 5_000));
    }
    const exit = await contenderDone;
    const result = JSON.parse(contenderOut.trim().split('\n').pop() ?? '{}') as {
      attempts?: number;
      granted?: number;
      failed?: number;
    };
    log(`contender: ${JSON.stringify(result)}, exit ${exit}`);
    const lost = leases.filter((l) => l.signal.aborted).length;
    const { rows } = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".leases
       WHERE key LIKE 'soak:%' AND expires_at > clock_timestamp()`,
    );
    const check = (ok: boolean, what: string): void => {
      log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
      if (!ok) failures.push(what);
    };
    check(lost === 0, `no lease lost (${lost} of ${LEASES} lost)`);
    check(rows[0]!.n === LEASES, `every lease live in the table (${rows[0]!.n})`);
    check(
      exit === 0 && (result.attempts ?? 0) > 0,
      `the contender ran (${result.attempts} attempts)`,
    );
    check(result.granted === 0, `the contender never got a held key (${result.granted} granted)`);
    check(
      errors.length === 0,
      `no background errors (${errors.length}${errors[0] ? `, first: ${String(errors[0])}` : ''})`,
    );
    const released = await Promise.all(leases.map((l) => l.release()));
    check(released.every(Boolean), 'every lease released at the end');
  } finally {
    await fence.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
    await server?.destroy();
  }
  const total = 6;
  console.log(`soak: ${total - failures.length} passed, ${failures.length} failed`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    console.log('soak: 0 passed, 1 failed');
    process.exit(1);
  },
);
