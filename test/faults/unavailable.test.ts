// Guarantee 9: unavailable is never contention. Against a server that accepts connections and
// never answers (a stalled TCP proxy) and against a refused port, every public call settles in
// bounded time with UnavailableError (cause: the driver's error), and close() returns.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgFence,
  LockTimeoutError,
  UnavailableError,
  type PgFence,
} from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { refusedPort, startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { settledWithin } from '../support/wait.js';

const CONNECT_MS = 1_000;
const STATEMENT_MS = 1_000;
const WAIT_MS = 1_500;
/** The bound of a call that does not wait, with room for a loaded 2-core machine. */
const NO_WAIT_LIMIT_MS = CONNECT_MS + STATEMENT_MS + 1_500;
/** The bound of a call that waits. */
const WAIT_LIMIT_MS = WAIT_MS + CONNECT_MS + 1_500;

type Call = [name: string, limitMs: number, run: (fence: PgFence) => Promise<unknown>];

const calls: Call[] = [
  ['migrate', NO_WAIT_LIMIT_MS, (f) => f.migrate()],
  ['tryLock', NO_WAIT_LIMIT_MS, (f) => f.tryLock('k')],
  ['lock', WAIT_LIMIT_MS, (f) => f.lock('k', { waitMs: WAIT_MS })],
  ['withLock', WAIT_LIMIT_MS, (f) => f.withLock('k', () => 1, { waitMs: WAIT_MS })],
  ['tryLease', NO_WAIT_LIMIT_MS, (f) => f.tryLease('k')],
  ['lease', WAIT_LIMIT_MS, (f) => f.lease('k', { waitMs: WAIT_MS })],
  ['withLease', WAIT_LIMIT_MS, (f) => f.withLease('k', () => 1, { waitMs: WAIT_MS })],
  ['isCurrent', NO_WAIT_LIMIT_MS, (f) => f.isCurrent('k', 1n)],
  ['claim (keys)', NO_WAIT_LIMIT_MS, (f) => f.claim({ keys: ['a', 'b'], limit: 1 })],
  ['claim (from)', NO_WAIT_LIMIT_MS, (f) => f.claim({ from: sql`SELECT 'a' AS key`, limit: 1 })],
  [
    'claim (waiting, woken by a channel)',
    WAIT_LIMIT_MS,
    (f) =>
      f.claim({ from: sql`SELECT 'a' AS key`, limit: 1, waitMs: WAIT_MS, wakeChannel: 'jobs' }),
  ],
  ['campaign', WAIT_LIMIT_MS, (f) => f.campaign('e', { waitMs: WAIT_MS })],
  ['leader', NO_WAIT_LIMIT_MS, (f) => f.leader('e')],
  [
    'observe (its first value)',
    NO_WAIT_LIMIT_MS,
    (f) => {
      const changes = f.observe('e', { signal: AbortSignal.timeout(60_000) });
      return changes[Symbol.asyncIterator]().next();
    },
  ],
  ['reap', NO_WAIT_LIMIT_MS, (f) => f.reap()],
  ['inspect', NO_WAIT_LIMIT_MS, (f) => f.inspect()],
];

function suite(
  name: string,
  url: () => string,
  before: () => Promise<void>,
  after: () => Promise<void>,
) {
  describe(name, () => {
    const t = useMigratedFence();
    let fence: PgFence;
    const errors: unknown[] = [];

    beforeAll(async () => {
      await before();
      fence = createPgFence({
        connectionString: url(),
        schema: t.schema,
        connectTimeoutMs: CONNECT_MS,
        statementTimeoutMs: STATEMENT_MS,
        onError: (e) => errors.push(e),
      });
    });
    afterAll(async () => {
      await after();
    });

    it.each(calls)('%s settles in bounded time with UnavailableError', async (_, limitMs, run) => {
      const call = run(fence);
      const outcome = call.then(
        () => 'resolved',
        (e: unknown) => e,
      );
      const took = await settledWithin(call, limitMs);
      expect(took, `settled within ${limitMs} ms`).not.toBeNull();
      const error = await outcome;
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error).not.toBeInstanceOf(LockTimeoutError);
      expect((error as UnavailableError).code).toBe('UNAVAILABLE');
      expect((error as UnavailableError).cause).toBeDefined();
    });

    it('a started reaper stops, and close() returns, in bounded time', async () => {
      const reaper = fence.startReaper({ intervalMs: 50 });
      await new Promise((r) => setTimeout(r, 300));
      expect(await settledWithin(reaper.stop(), NO_WAIT_LIMIT_MS)).not.toBeNull();
      expect(await settledWithin(fence.close(), 8_000)).not.toBeNull();
    });
  });
}

let proxy: TcpProxy | undefined;
suite(
  'a server that accepts connections and never answers',
  () => proxy!.urlFor(testUrl()),
  async () => {
    const target = new URL(testUrl());
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
    proxy.stall();
  },
  async () => {
    proxy?.resume();
    await proxy?.close();
  },
);

let port = 0;
suite(
  'a refused port',
  () => {
    const u = new URL(testUrl());
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  },
  async () => {
    port = await refusedPort();
  },
  async () => {},
);
