import type pg from 'pg';
import { destroyConnection, endPolitely, endWithin } from '../db/connection.js';
import type { Database } from '../db/database.js';
import { SessionChangedError } from '../errors.js';
import { settle } from '../util/settle.js';
import { sleep } from '../util/timers.js';
import { isServerError, RELEASE_SQL } from './session-identity.js';

/** How long a retiring session may take to give its locks back and say goodbye. */
const RETIRE_MS = 2_000;

/** How long and how often a retired session looks for its backend on new connections. */
const CLEANUP_MS = 3_000;
const CLEANUP_ROUNDS = 4;
/** Connections per round: 2, 4, 8, 8 — each its own server connection while it waits. */
const FIRST_WIDTH = 2;
const MAX_WIDTH = 8;
/** How long a round keeps its transactions open so that they sit on different backends. */
const HOLD_MS = 100;

/**
 * Retires a session's connection: gives back its locks on its own backend and ends the
 * connection between transactions (endPolitely). The release is conditioned on the marker, so
 * it acts on the session's backend only, wherever it lands; if it lands elsewhere (a
 * transaction-mode pooler), new connections look for that backend (`releaseMarkedBackend`).
 * Returns the error to report when they cannot reach it: those locks then stay on that server
 * connection, blocking their keys (never granting them twice), until the pooler closes it.
 * @internal
 */
export async function retireConnection(
  client: pg.Client,
  db: Database,
  marker: string,
  pid: number,
): Promise<SessionChangedError | undefined> {
  // Queued behind a failed statement, this is sent once the server is ready again.
  const release = client.query<{ mine: boolean }>({
    text: RELEASE_SQL,
    values: [marker],
    query_timeout: RETIRE_MS,
  } as pg.QueryConfig);
  const answer = await settle(release, performance.now() + RETIRE_MS);
  if (answer.kind === 'done') {
    // Answered: the server is between transactions, and the goodbye finds it so.
    await endWithin(client, RETIRE_MS);
    if (answer.value.rows[0]?.mine === true) return undefined;
  } else if (answer.kind === 'failed' && isServerError(answer.error)) {
    await endPolitely(client, RETIRE_MS);
  } else {
    // No answer, or a dead connection: nothing polite reaches the server now, and a server
    // that does not answer here would not answer new connections either.
    destroyConnection(client);
    return undefined;
  }
  if (await releaseMarkedBackend(db, marker).catch(() => false)) return undefined;
  return new SessionChangedError(
    `the locks of an advisory session that changed backend (pid ${pid}) could not be given ` +
      'back: its backend was not reached again. They stay on that server connection, ' +
      'blocking their keys, until the pooler closes it',
  );
}

/**
 * Releases the advisory locks still on the backend that carries `marker`, from new
 * connections. Behind a transaction-mode pooler a session's locks stay on its server
 * connection after pgfence lets go of the client connection (PgBouncer keeps the server
 * connection for its next client and resets nothing), where they would block their keys until
 * the pooler closes it. A lone statement lands on whichever server connection the pooler
 * picks (PgBouncer hands out the last used one first), so each round opens several
 * connections, each inside a transaction, which pins each to a server connection of its own,
 * and holds them briefly, so that the round covers the pool. Bounded: `CLEANUP_ROUNDS` rounds
 * within `CLEANUP_MS`. True once the marked backend answered (it then holds nothing).
 * @internal
 */
export async function releaseMarkedBackend(db: Database, marker: string): Promise<boolean> {
  const deadline = performance.now() + CLEANUP_MS;
  let width = FIRST_WIDTH;
  for (let round = 0; round < CLEANUP_ROUNDS; round += 1) {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    if (await releaseRound(db, marker, width, left)) return true;
    width = Math.min(width * 2, MAX_WIDTH);
    await sleep(Math.min(50 * (round + 1), Math.max(0, deadline - performance.now())));
  }
  return false;
}

async function releaseRound(
  db: Database,
  marker: string,
  width: number,
  timeoutMs: number,
): Promise<boolean> {
  let answered = 0;
  let allAnswered: () => void = () => {};
  const everyone = new Promise<void>((resolve) => (allAnswered = resolve));
  const hold = Promise.race([everyone, sleep(HOLD_MS)]);
  const one = async (): Promise<boolean> => {
    let client: pg.Client | undefined;
    try {
      client = await db.connectFresh(timeoutMs);
      client.on('error', () => {});
      await client.query({ text: 'BEGIN', query_timeout: timeoutMs } as pg.QueryConfig);
      const { rows } = await client.query<{ mine: boolean }>({
        text: RELEASE_SQL,
        values: [marker],
        query_timeout: timeoutMs,
      } as pg.QueryConfig);
      if (++answered === width) allAnswered();
      await hold;
      // The cleared marker is a setting, and settings made in a transaction last only if it
      // commits.
      await client.query({ text: 'COMMIT', query_timeout: timeoutMs } as pg.QueryConfig);
      return rows[0]?.mine === true;
    } catch {
      if (++answered === width) allAnswered();
      return false;
    } finally {
      if (client) await endPolitely(client, timeoutMs);
    }
  };
  const results = await Promise.all(Array.from({ length: width }, one));
  return results.includes(true);
}
