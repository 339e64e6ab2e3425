// A TCP proxy between a client and PostgreSQL that a fault test can make misbehave:
// `stall()` keeps every socket open but forwards nothing (a network that stops answering:
// no reply, no error), `cut()` destroys every connection (a reset), `resume()` forwards again
// for connections made from then on. `silenceExisting()` stalls only the connections open now,
// while new ones work: a pool's old connections gone silent after a failover or a network fault.
// For failover tests it also stands in for HAProxy or a
// VIP: `retarget()` sends new connections to another server, and `silence()` turns every
// current connection into a black hole for good — the peer's host died: no reply, no reset,
// not even when the server behind it goes away.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  stall(): void;
  resume(): void;
  cut(): void;
  /** New connections go to this server from now on; current ones are left as they are. */
  retarget(targetPort: number, targetHost?: string): void;
  /** Every current connection goes silent for ever; new ones are unaffected. */
  silence(): void;
  /** Stalls the connections open now, for good; connections made later forward as usual. */
  silenceExisting(): void;
  close(): Promise<void>;
  /** Connections accepted so far. */
  readonly accepted: number;
}

interface Pair {
  downstream: Socket;
  upstream: Socket;
  silent: boolean;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let stalled = false;
  let accepted = 0;
  let target = { host: targetHost, port: targetPort };
  const server: Server = createServer((downstream) => {
    accepted += 1;
    const upstream = connect(target.port, target.host);
    const pair: Pair = { downstream, upstream, silent: false };
    pairs.add(pair);
    const end = () => {
      upstream.destroy();
      // A silenced connection's client must not hear that the server went away.
      if (pair.silent) return;
      pairs.delete(pair);
      downstream.destroy();
    };
    // While stalled, bytes are swallowed: the peer sees silence, not an error.
    downstream.on('data', (chunk) => {
      if (!stalled && !pair.silent) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!stalled && !pair.silent) downstream.write(chunk);
    });
    downstream.on('error', end);
    upstream.on('error', end);
    downstream.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const silence = () => {
    for (const pair of pairs) {
      pair.silent = true;
      pair.downstream.pause();
    }
  };
  const cut = () => {
    for (const { downstream, upstream } of [...pairs]) {
      downstream.destroy();
      upstream.destroy();
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
    cut,
    retarget(targetPort: number, host = '127.0.0.1') {
      target = { host, port: targetPort };
    },
    silence,
    silenceExisting: silence,
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port with nothing listening on it: connecting is refused at once. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 1;
}
