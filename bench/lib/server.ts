// Which PostgreSQL the bench runs against: PGFENCE_BENCH_URL if set; else the server at
// 127.0.0.1:5432, database "test", when one answers; else an embedded server of its own
// (`--embedded` forces that), so the bench runs on a fresh clone with Node alone.
import pg from 'pg';
import { removeStaleServers, startEmbeddedServer } from '../../test/support/embedded-server.js';

export const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchServer {
  url: string;
  provider: 'PGFENCE_BENCH_URL' | '127.0.0.1:5432' | 'embedded';
  version: string;
  close(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function version(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(
      `SELECT current_setting('server_version') AS v`,
    );
    return rows[0]?.v ?? 'unknown';
  } finally {
    await client.end();
  }
}

export async function openServer(forceEmbedded: boolean): Promise<BenchServer> {
  const fromEnv = process.env.PGFENCE_BENCH_URL;
  if (fromEnv && !forceEmbedded) {
    return {
      url: fromEnv,
      provider: 'PGFENCE_BENCH_URL',
      version: await version(fromEnv),
      close: async () => {},
    };
  }
  if (!forceEmbedded && (await answers(LOCAL_URL))) {
    return {
      url: LOCAL_URL,
      provider: '127.0.0.1:5432',
      version: await version(LOCAL_URL),
      close: async () => {},
    };
  }
  // An interrupted run may have left its server's directory behind (the embedded package stops
  // its servers on SIGINT, but the process exits before the directory is removed).
  await removeStaleServers();
  const server = await startEmbeddedServer({ maxConnections: 200 });
  return {
    url: server.url,
    provider: 'embedded',
    version: await version(server.url),
    close: () => server.destroy(),
  };
}
