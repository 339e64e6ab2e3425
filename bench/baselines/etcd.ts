// etcd (the Debian `etcd-server` package) as a bench baseline: one node on loopback spare
// ports with its data under a temp dir, started by the bench and stopped by pid. Absent →
// SkipError. The mutex is the etcd3 client's election recipe (etcd's concurrency.Mutex: a key
// per waiter under a lease; the lowest create revision holds; each waiter watches only the key
// created just before its own, so one release wakes one waiter). The client's `lock()` is a
// single try that fails when the key is held, so under contention it could only poll.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { SkipError } from '../lib/variants.js';
import { killOnExit, sparePort, stopChildren, type StartedServers } from './zookeeper.js';

const ETCD = '/usr/bin/etcd';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts one etcd node and waits until /health says true. */
export async function startEtcd(): Promise<StartedServers> {
  if (!existsSync(ETCD)) throw new SkipError(`no etcd (${ETCD}): apt-get install etcd-server`);
  const dir = await mkdtemp(join(tmpdir(), 'pgfence-bench-etcd-'));
  const client = `http://127.0.0.1:${await sparePort()}`;
  const peer = `http://127.0.0.1:${await sparePort()}`;
  const children: ChildProcess[] = [];
  const forget = killOnExit(children);
  try {
    children.push(
      spawn(
        ETCD,
        [
          '--name=bench',
          `--data-dir=${join(dir, 'data')}`,
          `--listen-client-urls=${client}`,
          `--advertise-client-urls=${client}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=bench=${peer}`,
          '--initial-cluster-state=new',
          '--log-level=error',
        ],
        { stdio: 'ignore' },
      ),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const exited = children.find((c) => c.exitCode !== null);
      if (exited) throw new Error(`etcd exited (${exited.exitCode})`);
      const healthy = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1_000) })
        .then((r) => r.json() as Promise<{ health?: string }>)
        .then((b) => b.health === 'true')
        .catch(() => false);
      if (healthy) break;
      if (Date.now() > deadline) throw new Error('etcd did not serve within 30 s');
      await sleep(200);
    }
  } catch (error) {
    forget();
    await stopChildren(children, dir);
    throw error;
  }
  return {
    connect: client,
    pids: children.map((c) => c.pid ?? 0),
    stop: async () => {
      forget();
      await stopChildren(children, dir);
    },
  };
}

/** An etcd client; `acquire(name)` campaigns in the election `name` and resolves when elected. */
export class EtcdSession {
  private readonly client: Etcd3;

  constructor(url: string) {
    this.client = new Etcd3({ hosts: url });
  }

  async acquire(name: string, ttlS = 30): Promise<() => Promise<void>> {
    const campaign = this.client.election(name, ttlS).campaign(String(process.pid));
    await campaign.wait();
    return () => campaign.resign();
  }

  close(): void {
    this.client.close();
  }
}
