// ZooKeeper (the Debian `zookeeper` package, run from its jars with the machine's Java) as a
// bench baseline: one standalone server or a 3-server ensemble, on loopback spare ports with
// their data under a temp dir, started by the bench and stopped by pid. Absent → SkipError.
// The mutex is Curator's InterProcessMutex recipe over node-zookeeper-client: an ephemeral
// sequential node under the lock path; the lowest sequence holds; every other waiter watches
// only its predecessor, so one release wakes one waiter.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { SkipError } from '../lib/variants.js';

const JAR = '/usr/share/java/zookeeper.jar';
const JAVA = '/usr/bin/java';
const MAIN = 'org.apache.zookeeper.server.quorum.QuorumPeerMain';

/** A loopback port nobody listens on right now. */
export function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The server's `srvr` four-letter answer, or '' when it does not answer. */
function srvr(port: number): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const socket = connect(port, '127.0.0.1', () => socket.write('srvr'));
    socket.setTimeout(1_000, () => socket.destroy());
    socket.on('data', (d) => (out += d.toString()));
    socket.on('error', () => resolve(''));
    socket.on('close', () => resolve(out));
  });
}

/** Servers started by the bench: `connect` is the client connection string. */
export interface StartedServers {
  connect: string;
  pids: number[];
  stop(): Promise<void>;
}

/** Stops exactly `children` (SIGTERM, then SIGKILL after 5 s) and removes `dir`. */
export async function stopChildren(children: ChildProcess[], dir: string): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) {
            resolve();
            return;
          }
          const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
          c.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
  await rm(dir, { recursive: true, force: true });
}

/** Kills `children` at once if the bench exits without stopping them (an error, ^C). */
export function killOnExit(children: ChildProcess[]): () => void {
  const kill = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  };
  process.once('exit', kill);
  return () => process.removeListener('exit', kill);
}

/** Starts `nodes` ZooKeeper servers (1: standalone; 3: an ensemble) and waits until they serve. */
export async function startZooKeeper(nodes: 1 | 3): Promise<StartedServers> {
  if (!existsSync(JAR) || !existsSync(JAVA)) {
    throw new SkipError(`no ZooKeeper (${JAR}) or Java (${JAVA}): apt-get install zookeeper`);
  }
  const dir = await mkdtemp(join(tmpdir(), `pgfence-bench-zk${nodes}-`));
  const ports = await Promise.all(
    Array.from({ length: nodes }, async () => ({
      client: await sparePort(),
      peer: await sparePort(),
      election: await sparePort(),
    })),
  );
  const children: ChildProcess[] = [];
  const forget = killOnExit(children);
  try {
    for (const [i, p] of ports.entries()) {
      const data = join(dir, `server${i + 1}`);
      await mkdir(data, { recursive: true });
      const lines = [
        'tickTime=2000',
        'initLimit=10',
        'syncLimit=5',
        `dataDir=${data}`,
        `clientPort=${p.client}`,
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr',
        'maxClientCnxns=0',
      ];
      if (nodes > 1) {
        await writeFile(join(data, 'myid'), `${i + 1}\n`);
        for (const [j, q] of ports.entries()) {
          lines.push(`server.${j + 1}=127.0.0.1:${q.peer}:${q.election}`);
        }
      }
      const cfg = join(dir, `zoo${i + 1}.cfg`);
      await writeFile(cfg, `${lines.join('\n')}\n`);
      children.push(
        spawn(JAVA, ['-Xmx256m', `-Dzookeeper.log.dir=${dir}`, '-cp', JAR, MAIN, cfg], {
          stdio: 'ignore',
        }),
      );
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      const exited = children.find((c) => c.exitCode !== null);
      if (exited) throw new Error(`a ZooKeeper server exited (${exited.exitCode})`);
      const modes = await Promise.all(ports.map((p) => srvr(p.client)));
      const serving = modes.filter((m) => /Mode: (standalone|leader|follower)/.test(m));
      if (serving.length === nodes) break;
      if (Date.now() > deadline) throw new Error(`ZooKeeper ×${nodes} did not serve within 60 s`);
      await sleep(250);
    }
  } catch (error) {
    forget();
    await stopChildren(children, dir);
    throw error;
  }
  return {
    connect: ports.map((p) => `127.0.0.1:${p.client}`).join(','),
    pids: children.map((c) => c.pid ?? 0),
    stop: async () => {
      forget();
      await stopChildren(children, dir);
    },
  };
}

const call = <T>(f: (cb: (error: unknown, value: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => f((error, value) => (error ? reject(error) : resolve(value))));

/** A ZooKeeper session; `mutex(path)` is Curator's InterProcessMutex recipe. */
export class ZkSession {
  private constructor(private readonly client: zookeeper.Client) {}

  static async open(connectString: string): Promise<ZkSession> {
    const client = zookeeper.createClient(connectString, { sessionTimeout: 10_000, retries: 3 });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ZooKeeper: no session in 10 s')), 10_000);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      client.connect();
    });
    return new ZkSession(client);
  }

  /** Creates the lock's parent path (persistent), once, before anyone contends. */
  async ensurePath(path: string): Promise<void> {
    await call<string>((cb) => this.client.mkdirp(path, cb));
  }

  /** Resolves once this session holds the mutex at `path`; returns the release. */
  async acquire(path: string): Promise<() => Promise<void>> {
    const own = await call<string>((cb) =>
      this.client.create(
        `${path}/lock-`,
        Buffer.alloc(0),
        zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
        cb,
      ),
    );
    const name = own.slice(path.length + 1);
    const seq = (n: string) => n.slice(n.lastIndexOf('-') + 1);
    for (;;) {
      const children = await call<string[]>((cb) => this.client.getChildren(path, cb));
      children.sort((a, b) => seq(a).localeCompare(seq(b)));
      const at = children.indexOf(name);
      if (at < 0) throw new Error('ZooKeeper: our lock node vanished (session lost?)');
      if (at === 0) break;
      const predecessor = `${path}/${children[at - 1]}`;
      // Watch only the node just before ours; if it is already gone, look again.
      await new Promise<void>((resolve, reject) => {
        this.client.exists(
          predecessor,
          () => resolve(),
          (error, stat) => {
            if (error) reject(error instanceof Error ? error : new Error(String(error)));
            else if (!stat) resolve();
          },
        );
      });
    }
    return () => call<void>((cb) => this.client.remove(own, -1, (e) => cb(e, undefined)));
  }

  close(): void {
    this.client.close();
  }
}
