// A TCP proxy between a client and PostgreSQL that a fault test can make misbehave:
// `stall()` keeps every socket open but forwards nothing (a network that stops answering:
// no reply, no error), `cut()` destroys every connection (a reset), `resume()` forwards again
// for connections made from then on. `silenceExisting()` stalls only the connections open now,
// while new ones work: a pool's old connections gone silent after a failover or a network fault.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  stall(): void;
  resume(): void;
  /** Stalls the connections open now, for good; connections made later forward as usual. */
  silenceExisting(): void;
  cut(): void;
  close(): Promise<void>;
  /** Connections accepted so far. */
  readonly accepted: number;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const silenced = new WeakSet<Socket>();
  let stalled = false;
  let accepted = 0;
  const server: Server = createServer((downstream) => {
    accepted += 1;
    const upstream = connect(targetPort, targetHost);
    const pair: [Socket, Socket] = [downstream, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    // While stalled, bytes are swallowed: the peer sees silence, not an error.
    downstream.on('data', (chunk) => {
      if (!stalled && !silenced.has(downstream)) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!stalled && !silenced.has(downstream)) downstream.write(chunk);
    });
    downstream.on('error', end);
    upstream.on('error', end);
    downstream.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const cut = () => {
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    get accepted() {
      return accepted;
    },
    urlFor(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
    },
    silenceExisting() {
      for (const [downstream] of pairs) silenced.add(downstream);
    },
    cut,
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
