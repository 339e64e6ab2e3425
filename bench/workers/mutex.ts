// A bench process contending for one key with one of several mutexes (scenario 7): pgfence's
// lease or lock (a PgFence of this process's own), ZooKeeper (one server or three) or etcd.
// On "go" it loops acquire → check exclusivity → release → `thinkMs` of work outside the
// lock until the round ends, and sends back each grant's times on the machine's shared clock
// (performance.timeOrigin + now), so that the grants of several processes can be put in one
// order. Exclusivity is checked across processes with a file created O_EXCL while held: a
// second holder finds it there.
import { closeSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPgFence, type PgFence } from '../../src/index.js';
import { EtcdSession } from '../baselines/etcd.js';
import { ZkSession } from '../baselines/zookeeper.js';

export type MutexSubject = 'pgfence-lease' | 'pgfence-lock' | 'zk1' | 'zk3' | 'etcd';

export type MutexCommand =
  | { type: 'open'; zk1?: string; zk3?: string; etcd?: string }
  | { type: 'pg-open'; url: string; schema: string }
  | { type: 'pg-close' }
  | {
      type: 'go';
      subject: MutexSubject;
      key: string;
      durationMs: number;
      thinkMs: number;
      /** A directory of this round: the held-marker file goes in it. */
      checkDir: string;
    };

export type Grant = [asked: number, granted: number, released: number];
export type MutexReply =
  | { type: 'ready' }
  | { type: 'done'; grants: Grant[]; violations: number }
  | { type: 'error'; message: string };

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL_MS = 10_000;
const WAIT_MS = 30_000;

let fence: PgFence | undefined;
const zk: Partial<Record<'zk1' | 'zk3', ZkSession>> = {};
let etcd: EtcdSession | undefined;

function acquirer(subject: MutexSubject, key: string): () => Promise<() => Promise<unknown>> {
  switch (subject) {
    case 'pgfence-lease':
      return async () => {
        const l = await fence!.lease(key, { ttlMs: TTL_MS, waitMs: WAIT_MS });
        return () => l.release();
      };
    case 'pgfence-lock':
      return async () => {
        const l = await fence!.lock(key, { waitMs: WAIT_MS });
        return () => l.release();
      };
    case 'zk1':
    case 'zk3': {
      const session = zk[subject]!;
      return () => session.acquire(`/pgfence-bench/${key}`);
    }
    case 'etcd':
      return () => etcd!.acquire(`pgfence-bench/${key}`);
  }
}

async function closeAll(): Promise<void> {
  await fence?.close().catch(() => {});
  for (const s of Object.values(zk)) s.close();
  etcd?.close();
}

process.on('disconnect', () => void closeAll().finally(() => process.exit(0)));
process.on('message', (command: MutexCommand) => {
  void (async () => {
    try {
      if (command.type === 'open') {
        if (command.zk1) zk.zk1 = await ZkSession.open(command.zk1);
        if (command.zk3) zk.zk3 = await ZkSession.open(command.zk3);
        if (command.etcd) {
          etcd = new EtcdSession(command.etcd);
          await (
            await etcd.acquire(`pgfence-bench/warm/${process.pid}`)
          )();
        }
        process.send?.({ type: 'ready' });
        return;
      }
      if (command.type === 'pg-open') {
        fence = createPgFence({
          connectionString: command.url,
          schema: command.schema,
          poolSize: 1,
          advisorySessions: 1,
          applicationName: 'pgfence-bench',
        });
        await (await fence.lock(`warm:${process.pid}`)).release();
        await (await fence.lease(`warm:${process.pid}`, { ttlMs: TTL_MS })).release();
        process.send?.({ type: 'ready' });
        return;
      }
      if (command.type === 'pg-close') {
        await fence?.close();
        fence = undefined;
        process.send?.({ type: 'ready' });
        return;
      }
      if (command.subject === 'zk1' || command.subject === 'zk3') {
        await zk[command.subject]!.ensurePath(`/pgfence-bench/${command.key}`);
      }
      const acquire = acquirer(command.subject, command.key);
      mkdirSync(command.checkDir, { recursive: true });
      const marker = join(command.checkDir, 'held');
      const grants: Grant[] = [];
      let violations = 0;
      const until = now() + command.durationMs;
      while (now() < until) {
        const asked = now();
        const release = await acquire();
        const granted = now();
        let mine = false;
        try {
          closeSync(openSync(marker, 'wx'));
          mine = true;
        } catch {
          violations += 1;
        }
        if (mine) unlinkSync(marker);
        await release();
        grants.push([asked, granted, now()]);
        await sleep(command.thinkMs);
      }
      process.send?.({ type: 'done', grants, violations });
    } catch (error) {
      process.send?.({ type: 'error', message: String(error) });
    }
  })();
});
