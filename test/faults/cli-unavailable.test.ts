// The CLI exits 69 whenever the database is unreachable (a refused port) or does not answer (a
// stalled network) — `run` with the default wait ("forever") and `run --advisory` included —
// within the connect bound, saying so on stderr.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgfence } from '../support/cli.js';
import { testUrl } from '../support/database.js';
import { refusedPort, startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const commands: [string, string[]][] = [
  ['run (default wait)', ['run', 'k', '--', 'node', '-e', '0']],
  ['run --advisory --wait 3s', ['run', 'k', '--advisory', '--wait', '3s', '--', 'node', '-e', '0']],
  ['run --wait 0', ['run', 'k', '--wait', '0', '--', 'node', '-e', '0']],
  ['ls', ['ls']],
  ['migrate', ['migrate']],
  ['reap', ['reap']],
  ['release', ['release', 'k', '--force']],
];

async function refusedUrl(): Promise<string> {
  const url = new URL(testUrl());
  url.hostname = '127.0.0.1';
  url.port = String(await refusedPort());
  return url.toString();
}

describe('pgfence against a database it cannot use', () => {
  let proxy: TcpProxy;
  let stalled: string;
  let refused: string;

  beforeAll(async () => {
    const target = new URL(testUrl());
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
    proxy.stall();
    // libpq's connect_timeout, honoured: 2 s.
    const url = new URL(proxy.urlFor(testUrl()));
    url.searchParams.set('connect_timeout', '2');
    stalled = url.toString();
    refused = await refusedUrl();
  });
  afterAll(async () => {
    proxy.resume();
    await proxy.close();
  });

  it.each(commands)(
    '%s exits 69 on a refused port and on a stalled server',
    async (_, args) => {
      const [onRefused, onStalled] = await Promise.all([
        pgfence([...args, '--url', refused]),
        pgfence([...args, '--url', stalled]),
      ]);
      for (const [what, finished] of [
        ['refused', onRefused],
        ['stalled', onStalled],
      ] as const) {
        expect(finished.code, `${what}: ${finished.stderr}`).toBe(69);
        expect(finished.stderr, what).toMatch(
          /pgfence: .*(unavailable|cannot reach|timeout|ECONNREFUSED)/i,
        );
      }
    },
    60_000,
  );
});
