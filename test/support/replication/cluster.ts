// A primary and two streaming standbys (s1, s2) on spare loopback ports, data under a temp dir.
// Clients reach the primary through `proxy` (HAProxy or a VIP, as far as they can tell), and
// each standby replicates through a proxy of its own, so a test can stall one standby's stream.
// Quorum commit is `synchronous_standby_names = 'ANY 1 (s1, s2)'`; asynchronous is ''.
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  isAlive,
  makeOwnedDir,
  postmasterPid,
  stopPostmaster,
} from '../postgres-process.js';
import { startTcpProxy, type TcpProxy } from '../tcp-proxy.js';
import { sleep } from '../wait.js';
import { PgNode } from './pg-node.js';

export const CLUSTER_DIR_PREFIX = 'pgfence-repl-';

export type Replication = 'quorum' | 'async';

export interface Cluster {
  primary: PgNode;
  standbys: [PgNode, PgNode];
  /** Where clients connect: forwards to the current primary. */
  proxy: TcpProxy;
  /** s1's and s2's replication streams, in that order. */
  replicationProxies: [TcpProxy, TcpProxy];
  /** The client URL (through `proxy`) for `database`. */
  url(database?: string, user?: string): string;
  /** Waits until both standbys stream (and, with quorum commit, count for the quorum). */
  waitForStandbys(timeoutMs?: number): Promise<void>;
  /** Every node, and every proxy, stopped; the directory removed. */
  destroy(): Promise<void>;
}

/** Servers left by a killed run (their owner process is gone) are stopped and removed. */
export async function removeStaleClusters(): Promise<void> {
  const base = tmpdir();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith(CLUSTER_DIR_PREFIX)) continue;
    const dir = join(base, name);
    const owner = Number.parseInt(
      await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => ''),
      10,
    );
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    for (const node of await readdir(dir).catch(() => [] as string[])) {
      const pid = await postmasterPid(join(dir, node));
      if (pid !== undefined) await stopPostmaster(pid, 10_000);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

export async function startCluster(replication: Replication): Promise<Cluster> {
  await removeStaleClusters();
  const dir = await makeOwnedDir(CLUSTER_DIR_PREFIX);
  const nodes: PgNode[] = [];
  const proxies: TcpProxy[] = [];
  // A test that fails must not leave servers behind, nor may a test process that is killed.
  const onExit = () => nodes.forEach((n) => n.stopNow());
  process.once('exit', onExit);
  const destroy = async () => {
    process.off('exit', onExit);
    await Promise.allSettled(proxies.map((p) => p.close()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
    if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
  };
  try {
    const names = replication === 'quorum' ? 'ANY 1 (s1, s2)' : '';
    const primary = await PgNode.init('primary', join(dir, 'primary'), await freePort(), names);
    nodes.push(primary);
    await primary.start();
    const proxy = await startTcpProxy('127.0.0.1', primary.port);
    proxies.push(proxy);
    const standbys: PgNode[] = [];
    const replicationProxies: TcpProxy[] = [];
    for (const name of ['s1', 's2']) {
      const replicationProxy = await startTcpProxy('127.0.0.1', primary.port);
      proxies.push(replicationProxy);
      replicationProxies.push(replicationProxy);
      const standby = await PgNode.standby(
        name,
        join(dir, name),
        await freePort(),
        primary.port,
        replicationProxy.port,
      );
      nodes.push(standby);
      await standby.start();
      standbys.push(standby);
    }
    const cluster: Cluster = {
      primary,
      standbys: standbys as [PgNode, PgNode],
      proxy,
      replicationProxies: replicationProxies as [TcpProxy, TcpProxy],
      url(database = 'postgres', user = 'postgres') {
        return `postgres://${user}@127.0.0.1:${proxy.port}/${database}`;
      },
      async waitForStandbys(timeoutMs = 60_000) {
        const want = replication === 'quorum' ? 'quorum' : 'async';
        const deadline = performance.now() + timeoutMs;
        for (;;) {
          const rows = await primary.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_replication
              WHERE state = 'streaming' AND sync_state = $1`,
            [want],
          );
          if (rows[0]!.n === 2) return;
          if (performance.now() > deadline) {
            throw new Error(`the standbys did not stream (${want}) within ${timeoutMs} ms`);
          }
          await sleep(100);
        }
      },
      destroy,
    };
    return cluster;
  } catch (error) {
    await destroy();
    throw error;
  }
}

/** The standby that received the most WAL (`order` 'most') or the least ('least'). */
export async function pickStandby(
  standbys: readonly PgNode[],
  order: 'most' | 'least',
): Promise<{ node: PgNode; lsns: Record<string, string> }> {
  const lsns: Record<string, string> = {};
  const measured: { node: PgNode; lag: bigint }[] = [];
  for (const node of standbys) {
    const [row] = await node.query<{ lsn: string; diff: string }>(
      `SELECT pg_last_wal_receive_lsn()::text AS lsn,
              pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::text AS diff`,
    );
    lsns[node.name] = row!.lsn;
    measured.push({ node, lag: BigInt(row!.diff.split('.')[0]!) });
  }
  measured.sort((a, b) => (a.lag < b.lag ? -1 : a.lag > b.lag ? 1 : 0));
  const chosen = order === 'most' ? measured[measured.length - 1]! : measured[0]!;
  return { node: chosen.node, lsns };
}
