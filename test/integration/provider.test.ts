import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DIR_PREFIX, removeStaleServers, startEmbeddedServer } from '../support/embedded-server.js';

/** A pid that is certainly not running: past the kernel's pid limit. */
const DEAD_PID = 4_194_305;

describe('the embedded server provider', () => {
  it('cleans up after a run that was killed: its server is stopped and its directory removed', async () => {
    // A server whose owning test process has died, as after `kill -9` of a test run.
    const orphan = await startEmbeddedServer();
    const pid = await orphan.postmasterPid();
    await writeFile(join(orphan.dataDir, '..', 'owner.pid'), String(DEAD_PID));
    // And a directory left half-made by a run killed during initdb.
    const halfMade = await mkdtemp(join(tmpdir(), DIR_PREFIX));
    await mkdir(join(halfMade, 'data'));
    await writeFile(join(halfMade, 'owner.pid'), String(DEAD_PID));

    await removeStaleServers();

    expect(existsSync(join(orphan.dataDir, '..'))).toBe(false);
    expect(existsSync(halfMade)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    // A new server starts fine after the cleanup.
    const next = await startEmbeddedServer();
    try {
      const client = new pg.Client({ connectionString: next.url });
      await client.connect();
      const { rows } = await client.query('SELECT 1 AS one');
      await client.end();
      expect(rows[0].one).toBe(1);
    } finally {
      await next.destroy();
    }
  });

  it('leaves the servers of runs that are still alive alone', async () => {
    const live = await startEmbeddedServer();
    try {
      await removeStaleServers();
      expect(existsSync(live.dataDir)).toBe(true);
      const client = new pg.Client({ connectionString: live.url });
      await client.connect();
      await client.end();
    } finally {
      await live.destroy();
    }
  });
});
